package org.mergeengine.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.mergeengine.formats.FormatException;
import org.mergeengine.formats.ModelFolder;

/**
 * The decoder structure of a model, found from its tensor names: the layer stack
 * ({@code <prefix><N>.<suffix>}, as in Llama, Mistral, Qwen2, Gemma, Phi-3 and GPT-2), the tensors
 * before it (embeddings) and after it (final norm, lm_head). No per-architecture tables: any model
 * whose layers are numbered this way can be merged and sliced.
 */
public final class ModelLayout {
    private static final Pattern LAYER = Pattern.compile("^(.*?\\.)(\\d+)\\.(.+)$");
    /** Config keys that hold the layer count, tried in order (dotted paths into nested configs). */
    public static final List<String> LAYER_KEYS = List.of("num_hidden_layers", "n_layer", "num_layers", "n_layers",
            "text_config.num_hidden_layers");
    private static final Pattern EMBED = Pattern.compile("(^|\\.)(embed_tokens|wte|wpe|word_embeddings|tok_embeddings|embed_in|embeddings)(\\.|$)");
    private static final Pattern LM_HEAD = Pattern.compile("(^|\\.)(lm_head|embed_out)\\.weight$|^output\\.weight$");

    private final String layerPrefix;
    private final int numLayers;
    private final String layerKey;
    private final Map<Integer, Map<String, String>> layers; // index -> suffix -> full name
    private final List<String> pre, post;

    private ModelLayout(String layerPrefix, int numLayers, String layerKey, Map<Integer, Map<String, String>> layers, List<String> pre, List<String> post) {
        this.layerPrefix = layerPrefix;
        this.numLayers = numLayers;
        this.layerKey = layerKey;
        this.layers = layers;
        this.pre = pre;
        this.post = post;
    }

    public static ModelLayout of(String label, ModelFolder folder) {
        Map<String, TreeMap<Integer, Map<String, String>>> byPrefix = new LinkedHashMap<>();
        Map<String, Integer> counts = new HashMap<>();
        List<String> loose = new ArrayList<>();
        for (String name : folder.tensors().keySet()) {
            Matcher m = LAYER.matcher(name);
            if (m.matches()) {
                String prefix = m.group(1);
                int idx;
                try {
                    idx = Integer.parseInt(m.group(2));
                } catch (NumberFormatException e) {
                    loose.add(name);
                    continue;
                }
                byPrefix.computeIfAbsent(prefix, k -> new TreeMap<>()).computeIfAbsent(idx, k -> new LinkedHashMap<>()).put(m.group(3), name);
                counts.merge(prefix, 1, Integer::sum);
            } else {
                loose.add(name);
            }
        }
        Integer configured = null;
        String key = null;
        ObjectNode cfg = folder.config();
        if (cfg != null) {
            for (String k : LAYER_KEYS) {
                JsonNode v = at(cfg, k);
                if (v != null && v.isIntegralNumber()) {
                    if (!v.canConvertToInt()) throw new FormatException(folder.dir() + ": config.json says " + k + " = " + v.asText() + ", more layers than can exist");
                    configured = v.asInt();
                    key = k;
                    break;
                }
            }
        }
        String main = null;
        for (Map.Entry<String, TreeMap<Integer, Map<String, String>>> e : byPrefix.entrySet()) {
            if (configured != null && e.getValue().lastKey() + 1 == configured) {
                main = e.getKey();
                break;
            }
        }
        if (main == null) {
            for (String p : byPrefix.keySet()) if (main == null || counts.get(p) > counts.get(main)) main = p;
        }
        Map<Integer, Map<String, String>> layers = main == null ? Map.of() : byPrefix.get(main);
        for (Map.Entry<String, TreeMap<Integer, Map<String, String>>> e : byPrefix.entrySet()) {
            if (e.getKey().equals(main)) continue;
            // Layers of another stack (a vision tower, say) are merged whole, like the embeddings.
            for (Map<String, String> l : e.getValue().values()) loose.addAll(l.values());
        }
        int n = layers.isEmpty() ? 0 : ((TreeMap<Integer, Map<String, String>>) layers).lastKey() + 1;
        if (configured != null && configured < n) {
            throw new FormatException(folder.dir() + ": config.json says " + key + " = " + configured
                    + " but the weights have layers up to " + (n - 1) + " (" + main + (n - 1) + ".*)");
        }
        int numLayers = configured != null ? configured : n;
        for (int i = 0; i < numLayers; i++) {
            if (!layers.containsKey(i)) {
                throw new FormatException(folder.dir() + ": layer " + i + " of " + numLayers + " has no tensors (" + main + i + ".*); the checkpoint is incomplete");
            }
        }
        List<String> pre = new ArrayList<>(), post = new ArrayList<>();
        for (String name : loose) {
            if (!EMBED.matcher(name).find() && (LM_HEAD.matcher(name).find() || isFinalNorm(name, main))) post.add(name);
            else pre.add(name);
        }
        return new ModelLayout(main == null ? "model.layers." : main, numLayers, key, layers, pre, post);
    }

    private static boolean isFinalNorm(String name, String mainPrefix) {
        String n = name.toLowerCase(java.util.Locale.ROOT);
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

    public String layerPrefix() { return layerPrefix; }
    public int numLayers() { return numLayers; }
    /** The config.json key holding the layer count, or null when the config has none. */
    public String layerKey() { return layerKey; }
    public Map<String, String> layer(int i) { return layers.getOrDefault(i, Map.of()); }
    public List<String> pre() { return pre; }
    public List<String> post() { return post; }

    /** The input embedding matrix's name (what a missing lm_head is tied to), or null. */
    public String inputEmbedding() {
        for (String p : pre) if (isInputEmbedding(p) && !p.contains("wpe") && !p.contains("position")) return p;
        return null;
    }
}
