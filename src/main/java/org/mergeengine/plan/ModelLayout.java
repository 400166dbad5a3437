package org.mergeengine.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.mergeengine.formats.FormatException;
import org.mergeengine.formats.ModelFolder;

/**
 * The structure of a model, found from its tensor names: its layer stacks
 * ({@code <prefix><N>.<suffix>}) and the modules they make, with the tensors before a stack
 * (embeddings) and after it (final norm, lm_head). No per-architecture tables: a decoder
 * (Llama, Qwen, Gemma, GPT-2, GPT-NeoX, BERT...) is one module, "default"; a model with several
 * stacks is split into mergekit's modules by the stacks' names: {@code text_decoder} and
 * {@code vision_tower} (a vision-language model), {@code encoder} and {@code decoder} (T5,
 * Whisper), and a module per other top-level name ({@code multi_modal_projector}, T5's
 * {@code shared}). Each stack's layer count is read from, and written to, its own config key.
 */
public final class ModelLayout {
    private static final Pattern LAYER = Pattern.compile("^(.*?\\.)(\\d+)\\.(.+)$");
    /** Config keys that hold a single stack's layer count, tried in order (dotted paths into nested configs). */
    public static final List<String> LAYER_KEYS = List.of("num_hidden_layers", "n_layer", "num_layers", "n_layers",
            "text_config.num_hidden_layers");
    private static final List<String> TEXT_KEYS = List.of("text_config.num_hidden_layers", "text_config.num_layers", "num_hidden_layers");
    private static final List<String> VISION_KEYS = List.of("vision_config.num_hidden_layers", "vision_config.depth", "vision_config.num_layers");
    private static final List<String> ENCODER_KEYS = List.of("encoder_layers", "num_layers", "num_encoder_layers", "encoder_config.num_hidden_layers");
    private static final List<String> DECODER_KEYS = List.of("decoder_layers", "num_decoder_layers", "decoder_config.num_hidden_layers");
    private static final Pattern EMBED = Pattern.compile("(^|\\.)(embed_tokens|wte|wpe|word_embeddings|tok_embeddings|embed_in|embeddings|shared)(\\.|$)");
    private static final Pattern LM_HEAD = Pattern.compile("(^|\\.)(lm_head|embed_out)\\.weight$|^output\\.weight$");
    /** Embeddings indexed by something other than the token: positions, token types, image patches. */
    private static final Pattern NOT_VOCAB = Pattern.compile("wpe|position|token_type|patch|class_embedding|pos_embed");

    /** A numbered stack of layers: {@code prefix + N + "." + suffix}. */
    public record Stack(String prefix, int numLayers, List<String> countKeys, Map<Integer, Map<String, String>> layers) {
        public Map<String, String> layer(int i) {
            return layers.getOrDefault(i, Map.of());
        }
    }

    /**
     * A part of the model merged on its own: a stack (or none, for a projector), the tensors
     * before it and after it, and the config object its per-layer keys live in ("" for the root).
     */
    public record Module(String name, Stack stack, List<String> pre, List<String> post, String configPath) {
        public int numLayers() {
            return stack == null ? 0 : stack.numLayers();
        }
    }

    private final Map<String, Module> modules;
    private final Module main;

    private ModelLayout(Map<String, Module> modules, Module main) {
        this.modules = modules;
        this.main = main;
    }

    public static ModelLayout of(String label, ModelFolder folder) {
        Map<String, TreeMap<Integer, Map<String, String>>> byPrefix = new LinkedHashMap<>();
        List<String> loose = new ArrayList<>();
        for (String name : folder.tensors().keySet()) {
            Matcher m = LAYER.matcher(name);
            if (m.matches() && m.group(2).length() < 7) {
                byPrefix.computeIfAbsent(m.group(1), k -> new TreeMap<>()).computeIfAbsent(Integer.parseInt(m.group(2)), k -> new LinkedHashMap<>())
                        .put(m.group(3), name);
            } else {
                loose.add(name);
            }
        }
        ObjectNode cfg = folder.config();
        // A stack is a run of layers numbered from 0 without gaps, or one the config counts;
        // anything else numbered (a projector's mlp.0, mlp.2) is merged whole, like an embedding.
        List<String> stackPrefixes = new ArrayList<>();
        for (Map.Entry<String, TreeMap<Integer, Map<String, String>>> e : byPrefix.entrySet()) {
            TreeMap<Integer, Map<String, String>> l = e.getValue();
            boolean contiguous = l.firstKey() == 0 && l.lastKey() + 1 == l.size();
            if (contiguous && (l.size() >= 2 || countedBy(cfg, l.size()))) stackPrefixes.add(e.getKey());
            else for (Map<String, String> x : l.values()) loose.addAll(x.values());
        }
        // One language stack per model: of several numbered groups with no vision, encoder or decoder
        // name, the one the config counts (else the largest) is the stack; the others are merged
        // whole, like embeddings, as before modules existed.
        List<String> texts = new ArrayList<>();
        for (String p : stackPrefixes) if (role(p).equals("text")) texts.add(p);
        if (texts.size() > 1) {
            String keep = null;
            for (String p : texts) if (countedBy(cfg, byPrefix.get(p).size()) && (keep == null || byPrefix.get(p).size() > byPrefix.get(keep).size())) keep = p;
            if (keep == null) for (String p : texts) if (keep == null || byPrefix.get(p).size() > byPrefix.get(keep).size()) keep = p;
            for (String p : texts) {
                if (p.equals(keep)) continue;
                stackPrefixes.remove(p);
                for (Map<String, String> x : byPrefix.get(p).values()) loose.addAll(x.values());
            }
        }

        Map<String, Module> modules = new LinkedHashMap<>();
        Module main;
        if (stackPrefixes.size() <= 1) {
            String prefix = stackPrefixes.isEmpty() ? null : stackPrefixes.get(0);
            Stack s = stack(folder, prefix, prefix == null ? new TreeMap<>() : byPrefix.get(prefix), LAYER_KEYS, cfg);
            List<String> pre = new ArrayList<>(), post = new ArrayList<>();
            for (String name : loose) (isPost(name) ? post : pre).add(name);
            main = new Module("default", s, pre, post, configPathOf(s.countKeys()));
            modules.put(main.name(), main);
            return new ModelLayout(modules, main);
        }

        boolean encDec = stackPrefixes.stream().anyMatch(p -> role(p).equals("encoder")) && stackPrefixes.stream().anyMatch(p -> role(p).equals("decoder"));
        Map<String, String> rootToModule = new LinkedHashMap<>();
        Module text = null;
        for (String p : stackPrefixes) {
            String r = role(p);
            String name;
            List<String> keys;
            if (r.equals("vision")) {
                name = "vision_tower";
                keys = VISION_KEYS;
            } else if (encDec && r.equals("encoder")) {
                name = "encoder";
                keys = ENCODER_KEYS;
            } else if (encDec && r.equals("decoder")) {
                name = "decoder";
                keys = DECODER_KEYS;
            } else {
                name = "text_decoder";
                keys = TEXT_KEYS;
            }
            if (modules.containsKey(name)) {
                throw new FormatException(folder.dir() + ": two layer stacks look like the " + name + " (" + modules.get(name).stack().prefix() + "N and " + p
                        + "N); this layout is not known to merge-engine");
            }
            Stack s = stack(folder, p, byPrefix.get(p), keys, cfg);
            Module m = new Module(name, s, new ArrayList<>(), new ArrayList<>(), configPathOf(s.countKeys()));
            modules.put(name, m);
            rootToModule.put(root(p), name);
            if (name.equals("text_decoder") || (text == null && name.equals("decoder"))) text = m;
        }
        main = text != null ? text : modules.values().iterator().next();
        for (String name : loose) {
            String best = null;
            for (String r : rootToModule.keySet()) if (name.startsWith(r) && (best == null || r.length() > best.length())) best = r;
            Module m;
            if (best != null) {
                m = modules.get(rootToModule.get(best));
            } else if (isLmHead(name)) {
                m = main;
            } else {
                String own = name.contains(".") ? name.substring(0, name.indexOf('.')) : name;
                m = modules.computeIfAbsent(own, k -> new Module(k, null, new ArrayList<>(), new ArrayList<>(), ""));
            }
            (m.stack() != null && isPost(name) ? m.post() : m.pre()).add(name);
        }
        return new ModelLayout(modules, main);
    }

    private static boolean countedBy(ObjectNode cfg, int n) {
        if (cfg == null) return false;
        for (List<String> keys : List.of(LAYER_KEYS, TEXT_KEYS, VISION_KEYS, ENCODER_KEYS, DECODER_KEYS)) {
            for (String k : keys) {
                JsonNode v = at(cfg, k);
                if (v != null && v.isIntegralNumber() && v.canConvertToInt() && v.asInt() == n) return true;
            }
        }
        return false;
    }

    /** The stack's config keys: every candidate key that counts its layers (a VLM may state it twice). */
    private static Stack stack(ModelFolder folder, String prefix, TreeMap<Integer, Map<String, String>> layers, List<String> candidates, ObjectNode cfg) {
        int n = layers.isEmpty() ? 0 : layers.lastKey() + 1;
        List<String> keys = new ArrayList<>();
        String firstKey = null;
        Integer firstValue = null;
        if (cfg != null) {
            for (String k : candidates) {
                JsonNode v = at(cfg, k);
                if (v == null || !v.isIntegralNumber()) continue;
                if (!v.canConvertToInt()) throw new FormatException(folder.dir() + ": config.json says " + k + " = " + v.asText() + ", more layers than can exist");
                if (firstKey == null) {
                    firstKey = k;
                    firstValue = v.asInt();
                }
                if (v.asInt() == n) keys.add(k);
            }
        }
        if (keys.isEmpty() && firstKey != null) {
            if (firstValue < n) {
                throw new FormatException(folder.dir() + ": config.json says " + firstKey + " = " + firstValue
                        + " but the weights have layers up to " + (n - 1) + " (" + prefix + (n - 1) + ".*)");
            }
            keys.add(firstKey);
            n = firstValue;
        }
        for (int i = 0; i < n; i++) {
            if (!layers.containsKey(i)) {
                throw new FormatException(folder.dir() + ": layer " + i + " of " + n + " has no tensors (" + prefix + i + ".*); the checkpoint is incomplete");
            }
        }
        return new Stack(prefix == null ? "model.layers." : prefix, n, List.copyOf(keys), layers);
    }

    private static String configPathOf(List<String> keys) {
        if (keys.isEmpty()) return "";
        String k = keys.get(0);
        return k.contains(".") ? k.substring(0, k.lastIndexOf('.')) : "";
    }

    private static String role(String prefix) {
        String p = prefix.toLowerCase(Locale.ROOT);
        if (p.contains("vision") || p.contains("visual") || p.contains("image")) return "vision";
        if (p.contains("decoder")) return "decoder";
        if (p.contains("encoder")) return "encoder";
        return "text";
    }

    /** The name part that everything of a stack's module starts with: "visual.", "encoder.", "model.language_model.". */
    static String root(String prefix) {
        String[] parts = prefix.split("\\.");
        if (parts.length >= 3 && (parts[0].equals("model") || parts[0].equals("language_model") && parts[1].equals("model"))) {
            return parts[0] + "." + parts[1] + ".";
        }
        return parts[0] + ".";
    }

    private static boolean isPost(String name) {
        if (EMBED.matcher(name).find()) return false;
        if (LM_HEAD.matcher(name).find()) return true;
        String n = name.toLowerCase(Locale.ROOT);
        return n.contains("norm") || n.contains("ln_f") || n.startsWith("final") || n.contains(".final");
    }

    static JsonNode at(JsonNode cfg, String dotted) {
        JsonNode cur = cfg;
        for (String part : dotted.split("\\.")) {
            if (cur == null || !cur.isObject()) return null;
            cur = cur.get(part);
        }
        return cur;
    }

    public static boolean isLmHead(String name) {
        return LM_HEAD.matcher(name).find();
    }

    public static boolean isInputEmbedding(String name) {
        return EMBED.matcher(name).find() && name.endsWith(".weight");
    }

    /** A name that may hold a vocabulary-indexed matrix: token embeddings or an LM head, never positions, token types or patches. */
    public static boolean isVocabularyName(String name) {
        return (isLmHead(name) || isInputEmbedding(name)) && !NOT_VOCAB.matcher(name.toLowerCase(Locale.ROOT)).find();
    }

    /** Every module, the main one (the language model) first. */
    public Map<String, Module> modules() {
        return modules;
    }

    public Module module(String name) {
        return modules.get(name);
    }

    /** The language model's module: the one a plain {@code slices:} config slices. */
    public Module main() {
        return main;
    }

    /** The module a tensor belongs to. */
    public String moduleOf(String tensor) {
        for (Module m : modules.values()) {
            if (m.pre().contains(tensor) || m.post().contains(tensor)) return m.name();
            if (m.stack() != null && tensor.startsWith(m.stack().prefix())) return m.name();
        }
        return main.name();
    }

    public String layerPrefix() { return main.stack().prefix(); }
    public int numLayers() { return main.numLayers(); }
    /** The config.json key holding the main stack's layer count, or null when the config has none. */
    public String layerKey() { return main.stack().countKeys().isEmpty() ? null : main.stack().countKeys().get(0); }
    public Map<String, String> layer(int i) { return main.stack().layer(i); }

    /** The input embedding matrix of a module (what a missing lm_head is tied to), or null. */
    public String inputEmbedding(Module m) {
        for (String p : m.pre()) if (isInputEmbedding(p) && isVocabularyName(p)) return p;
        for (Module o : modules.values()) for (String p : o.pre()) if (isInputEmbedding(p) && isVocabularyName(p)) return p;
        return null;
    }

    /** The input embedding matrix's name (what a missing lm_head is tied to), or null. */
    public String inputEmbedding() {
        return inputEmbedding(main);
    }
}
