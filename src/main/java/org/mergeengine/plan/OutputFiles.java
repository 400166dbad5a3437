package org.mergeengine.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.MergeConfig;
import org.mergeengine.config.ModelRef;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.methods.MergeMethod;

/**
 * Every file of the output folder besides the weights and their index: config.json (the donor's
 * text, with only the keys the merge changes rewritten), the files that travel with the model
 * (processor configs, remote code), the tokenizer and chat template, and the model card. Composed
 * at planning time from the inputs' files, so that the engine only writes bytes it is handed.
 */
public final class OutputFiles {
    private final MergeConfig cfg;
    private final MergeMethod method;
    private final ObjectNode config;
    private final Map<String, byte[]> tokenizerFiles;
    private final boolean tokenizerBuilt;
    private final Map<String, byte[]> tagalong;

    private OutputFiles(MergeConfig cfg, MergeMethod method, ObjectNode config, Map<String, byte[]> tokenizerFiles, boolean tokenizerBuilt,
                        Map<String, byte[]> tagalong) {
        this.tagalong = tagalong;
        this.cfg = cfg;
        this.method = method;
        this.config = config;
        this.tokenizerFiles = tokenizerFiles;
        this.tokenizerBuilt = tokenizerBuilt;
    }

    /**
     * Output files composed elsewhere (moe): {@code config} as config.json, the tokenizer files
     * (written with --copy-tokenizer), and files written whatever the options.
     */
    public static OutputFiles of(MergeConfig cfg, MergeMethod method, ObjectNode config, Map<String, byte[]> tokenizerFiles,
                                 Map<String, byte[]> always) {
        return new OutputFiles(cfg, method, config, tokenizerFiles, false, always);
    }

    /** Where an output layer comes from: a model (its config) and its layer in that model's stack of {@code modelLayers}. */
    record Origin(String model, ObjectNode config, int layer, int modelLayers) {}

    /**
     * One output stack: its module, the config keys that count its layers, the config object its
     * per-layer keys live in ("" for the root, "text_config"), the donor's layer count, and the
     * origin of each output layer.
     */
    record StackEdit(String module, List<String> countKeys, String configPath, int donorLayers, List<Origin> origins) {
        boolean identity() {
            if (origins.size() != donorLayers) return false;
            for (int i = 0; i < origins.size(); i++) if (origins.get(i).layer() != i) return false;
            return true;
        }
    }

    /** Config keys that list layer indices (renumbered when layers move), beyond the {@code *_layers} lists of integers. */
    static final Set<String> INDEX_KEYS = Set.of("mlp_only_layers", "full_attn_idxs", "swa_layers", "attn_layer_indices",
            "full_attention_layers", "sliding_window_layers", "global_attn_layers", "moe_layers", "dense_layers", "no_rope_layers_idx");
    /** Config keys that hold one entry per layer, beyond those named {@code *layer_types*} or {@code *_per_layer}. */
    static final Set<String> PER_LAYER_KEYS = Set.of("layer_types", "no_rope_layers", "block_types", "layers_block_type",
            "sliding_window_pattern_list", "num_kv_heads", "num_query_heads", "ffn_multipliers", "block_configs", "attn_type_list",
            "hybrid_override_pattern_list", "layer_norm_types");
    /** Files that travel with a model besides its tokenizer (processors), copied from the donor. */
    static final List<String> TAGALONG_FILES = List.of("preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json");

    static OutputFiles compose(MergeConfig cfg, MergeMethod method, ModelRef donorRef, ModelFolder donor, Map<ModelRef, ModelFolder> folders,
                               TokenizerMerge tokenizer, List<PlannedTensor> planned, List<StackEdit> stacks, List<String> warnings) {
        ObjectNode outCfg = outputConfig(cfg, donorRef, donor, planned, stacks, warnings);
        if (tokenizer != null) {
            setAt(outCfg, vocabKey(outCfg, stacks), tokenizer.paddedSize());
            warnings.addAll(tokenizer.warnings());
        }
        Map<String, byte[]> tok = tokenizerFiles(cfg, tokenizer, donor, folders);
        Map<String, byte[]> tagalong = tagalong(donorRef, donor, warnings);
        return new OutputFiles(cfg, method, outCfg, tok, tokenizer != null, tagalong);
    }

    /** The processor files and, when config.json has an auto_map, the code files it names (for trust_remote_code). */
    private static Map<String, byte[]> tagalong(ModelRef donorRef, ModelFolder donor, List<String> warnings) {
        List<String> names = new ArrayList<>(TAGALONG_FILES);
        List<String> code = autoMapFiles(donor.config());
        names.addAll(code);
        Map<String, byte[]> out = new LinkedHashMap<>();
        for (String n : names) {
            byte[] b = donor.companionFile(n);
            if (b != null) out.put(n, b);
            else if (code.contains(n)) {
                warnings.add("config.json of " + donorRef + " names remote code in auto_map, but " + n + " is missing from " + donor.dir()
                        + "; the output will not load with trust_remote_code until it is added");
            }
        }
        return out;
    }

    /**
     * The code files a config's auto_map names ({@code "modeling_x.XForCausalLM"} is
     * modeling_x.py), in this repository only: a {@code "repo--module.Class"} reference is fetched
     * from its own repository by transformers.
     */
    public static List<String> autoMapFiles(ObjectNode config) {
        List<String> names = new ArrayList<>();
        JsonNode autoMap = config == null ? null : config.get("auto_map");
        if (autoMap == null || !autoMap.isObject()) return names;
        for (JsonNode v : autoMap) {
            List<JsonNode> refs = new ArrayList<>();
            if (v.isArray()) v.forEach(refs::add);
            else refs.add(v);
            for (JsonNode r : refs) {
                if (!r.isTextual() || r.asText().contains("--")) continue;
                String ref = r.asText();
                int dot = ref.lastIndexOf('.');
                if (dot <= 0) continue;
                String file = ref.substring(0, dot).replace('.', '/') + ".py";
                if (!names.contains(file)) names.add(file);
            }
        }
        return names;
    }

    /** The output's config.json as a tree. */
    public ObjectNode config() {
        return config;
    }

    /** The tokenizer files of the output: the merged tokenizer, or the donor's files, with the chat template applied. */
    public Map<String, byte[]> tokenizerFiles() {
        return tokenizerFiles;
    }

    /** Files copied from the donor whatever the options: processor configs, remote code. */
    public Map<String, byte[]> tagalongFiles() {
        return tagalong;
    }

    /** True when a tokenizer was built (then its files are always written). */
    public boolean tokenizerBuilt() {
        return tokenizerBuilt;
    }

    /**
     * The files to write, by name. {@code outputName} names the model in its card; the donor's
     * tokenizer is written only with {@code copyTokenizer} (a built one always).
     */
    public Map<String, byte[]> files(String outputName, boolean copyTokenizer, boolean modelCard) {
        Map<String, byte[]> out = new LinkedHashMap<>();
        out.put("config.json", (Json.toPythonText(config) + "\n").getBytes(StandardCharsets.UTF_8));
        out.putAll(tagalong);
        if (copyTokenizer || tokenizerBuilt) out.putAll(tokenizerFiles);
        if (modelCard) {
            if (cfg.sourceText() != null) out.put("mergekit_config.yml", cfg.sourceText().getBytes(StandardCharsets.UTF_8));
            out.put("README.md", modelCard(outputName).getBytes(StandardCharsets.UTF_8));
        }
        return out;
    }

    private static ObjectNode outputConfig(MergeConfig cfg, ModelRef donorRef, ModelFolder donor, List<PlannedTensor> planned,
                                           List<StackEdit> stacks, List<String> warnings) {
        if (donor.config() == null) {
            throw new ConfigException("", "model " + donorRef + " (" + donor.dir() + ") has no config.json; the output's config.json is taken from it");
        }
        ObjectNode c = donor.config().deepCopy();
        for (StackEdit e : stacks) {
            int n = e.origins().size();
            List<String> keys = e.countKeys().isEmpty() && e.module().equals("default") ? List.of("num_hidden_layers") : e.countKeys();
            for (String key : keys) {
                JsonNode old = ModelLayout.at(c, key);
                if (old == null || !old.isIntegralNumber() || old.asInt() != n) setAt(c, key, n);
            }
            if (!e.identity()) {
                // every config object that counts this stack's layers (a VLM's text_config, and the root where it repeats them)
                Set<String> paths = new LinkedHashSet<>();
                paths.add(e.configPath());
                for (String k : keys) paths.add(k.contains(".") ? k.substring(0, k.lastIndexOf('.')) : "");
                for (String path : paths) sliceLayerLists(c, e, path);
            }
        }
        DType dominant = cfg.outDtype() != null ? cfg.outDtype() : cfg.dtype();
        if (dominant == null) {
            Map<DType, Long> bytes = new HashMap<>();
            for (PlannedTensor t : planned) if (t.outDType().isFloating()) bytes.merge(t.outDType(), t.outputBytes(), Long::sum);
            dominant = bytes.entrySet().stream().max(Map.Entry.comparingByValue()).map(Map.Entry::getKey).orElse(null);
        }
        if (dominant != null) {
            // transformers 5 writes "dtype", earlier versions "torch_dtype": set the one the donor has.
            boolean any = false;
            for (String k : List.of("dtype", "torch_dtype")) {
                if (c.has(k) && !c.get(k).isNull()) c.put(k, dominant.torchName());
                any |= c.has(k);
            }
            if (!any) c.put("torch_dtype", dominant.torchName());
        }
        String vocabKey = vocabKey(c, stacks);
        JsonNode vs = ModelLayout.at(c, vocabKey);
        PlannedTensor vocab = vocabularyTensor(planned, vs != null && vs.isIntegralNumber() ? vs.asLong() : -1);
        if (vocab != null && vs != null && vs.isIntegralNumber() && vs.asLong() != vocab.shape()[0]) {
            warnings.add("config.json " + vocabKey + " set to " + vocab.shape()[0] + " (the rows of " + vocab.name() + ") instead of the donor's " + vs.asLong());
            setAt(c, vocabKey, vocab.shape()[0]);
        }
        return c;
    }

    /** vocab_size at the root, else in the language model's config object (text_config of a vision-language model). */
    static String vocabKey(ObjectNode c, List<StackEdit> stacks) {
        if (c.has("vocab_size")) return "vocab_size";
        for (StackEdit e : stacks) {
            if (!e.configPath().isEmpty() && (e.module().equals("text_decoder") || e.module().equals("decoder"))) {
                String k = e.configPath() + ".vocab_size";
                if (ModelLayout.at(c, k) != null) return k;
            }
        }
        return ModelLayout.at(c, "text_config.vocab_size") != null ? "text_config.vocab_size" : "vocab_size";
    }

    /**
     * The vocabulary matrix: a token embedding (else an LM head) whose inputs have the config's
     * vocab_size rows; never a position, token-type or patch embedding.
     */
    static PlannedTensor vocabularyTensor(List<PlannedTensor> planned, long configVocab) {
        PlannedTensor head = null;
        for (PlannedTensor t : planned) {
            if (!ModelLayout.isVocabularyName(t.name()) || t.shape().length != 2) continue;
            PlannedTensor.Input in = t.inputs().get(0);
            long rows = in.source().info().shape()[0];
            if (configVocab >= 0 && rows != configVocab && in.rows() == null) continue;
            if (ModelLayout.isInputEmbedding(t.name())) return t;
            if (head == null) head = t;
        }
        return head;
    }

    /**
     * Per-layer lists of a sliced stack: each output layer takes the entry of the layer it comes
     * from (in its own model's config), and lists of layer indices are renumbered. A list whose
     * name says it is about layers but that fits neither shape is refused by name.
     */
    private static void sliceLayerLists(ObjectNode root, StackEdit e, String path) {
        JsonNode target = path.isEmpty() ? root : ModelLayout.at(root, path);
        if (!(target instanceof ObjectNode obj)) return;
        List<String> keys = new ArrayList<>();
        obj.fieldNames().forEachRemaining(keys::add);
        String where = path.isEmpty() ? "" : path + ".";
        for (String key : keys) {
            JsonNode v = obj.get(key);
            if (!v.isArray()) {
                checkPeriod(obj, key, e, where);
                continue;
            }
            boolean indexKey = INDEX_KEYS.contains(key) || (key.endsWith("_layers") && !PER_LAYER_KEYS.contains(key) && v.size() != e.donorLayers()
                    && allInts(v));
            boolean perLayer = !indexKey && (PER_LAYER_KEYS.contains(key) || key.contains("layer_types") || key.endsWith("_per_layer"))
                    && v.size() == e.donorLayers();
            if (indexKey && allInts(v)) {
                ArrayNode out = Json.MAPPER.createArrayNode();
                for (int i = 0; i < e.origins().size(); i++) {
                    Origin o = e.origins().get(i);
                    JsonNode list = listOf(o, path, key);
                    if (list == null || !list.isArray()) {
                        throw new ConfigException("", "config.json of " + o.model() + " has no " + where + key + " to take layer " + o.layer() + "'s entry from");
                    }
                    for (JsonNode x : list) if (x.isIntegralNumber() && x.asInt() == o.layer()) out.add(i);
                }
                obj.set(key, out);
            } else if (perLayer) {
                ArrayNode out = Json.MAPPER.createArrayNode();
                for (Origin o : e.origins()) {
                    JsonNode list = listOf(o, path, key);
                    if (list == null || !list.isArray() || list.size() != o.modelLayers()) {
                        throw new ConfigException("", "config.json " + where + key + " of " + o.model() + " does not have one entry per layer ("
                                + o.modelLayers() + "); cannot give output layers their entries");
                    }
                    out.add(list.get(o.layer()));
                }
                obj.set(key, out);
            } else if (key.contains("layer") && !key.equals("architectures") && v.size() > 0 && (v.size() == e.donorLayers() || allInts(v))) {
                throw new ConfigException("", "config.json " + where + key + " looks like a per-layer list, and merge-engine does not know "
                        + "how to map it to the output's " + e.origins().size() + " layers; merge without changing the layer count, or fix the key by hand");
            }
        }
    }

    /**
     * A period such as decoder_sparse_step (every k-th layer is a mixture of experts) must mark the
     * same output layers as the layers they come from, else the weights do not fit the config.
     */
    private static void checkPeriod(ObjectNode obj, String key, StackEdit e, String where) {
        if (!key.equals("decoder_sparse_step") && !key.equals("interleave_moe_layer_step") && !(key.equals("sliding_window_pattern") && !obj.has("layer_types"))) {
            return;
        }
        JsonNode v = obj.get(key);
        if (!v.isIntegralNumber() || v.asInt() <= 1) return;
        int k = v.asInt();
        for (int i = 0; i < e.origins().size(); i++) {
            if (((i + 1) % k == 0) != ((e.origins().get(i).layer() + 1) % k == 0)) {
                throw new ConfigException("", "config.json " + where + key + " = " + k + " marks every " + k + "th layer; output layer " + i
                        + " comes from layer " + e.origins().get(i).layer() + ", which it does not mark alike, so the weights would not fit the config");
            }
        }
    }

    private static JsonNode listOf(Origin o, String path, String key) {
        if (o.config() == null) return null;
        JsonNode t = path.isEmpty() ? o.config() : ModelLayout.at(o.config(), path);
        return t == null ? null : t.get(key);
    }

    private static boolean allInts(JsonNode v) {
        for (JsonNode x : v) if (!x.isIntegralNumber()) return false;
        return true;
    }

    static void setAt(ObjectNode root, String dotted, long value) {
        String[] parts = dotted.split("\\.");
        ObjectNode cur = root;
        for (int i = 0; i < parts.length - 1; i++) {
            JsonNode n = cur.get(parts[i]);
            if (!(n instanceof ObjectNode o)) return;
            cur = o;
        }
        cur.put(parts[parts.length - 1], value);
    }

    private static Map<String, byte[]> tokenizerFiles(MergeConfig cfg, TokenizerMerge tokenizer, ModelFolder donor, Map<ModelRef, ModelFolder> folders) {
        Map<String, byte[]> files = new LinkedHashMap<>();
        ModelFolder from = tokenizer != null ? tokenizer.donor() : donor;
        for (String f : ModelFolder.TOKENIZER_FILES) {
            byte[] b = from.readTokenizerFile(f);
            if (b == null && f.equals("generation_config.json")) b = ModelFolder.readInside(from.dir(), f, from.root());
            if (b != null) files.put(f, b);
        }
        if (tokenizer != null) {
            files.remove("tokenizer.model"); // the merged vocabulary lives in tokenizer.json alone
            files.remove("added_tokens.json");
            files.put("tokenizer.json", Json.toString(tokenizer.tokenizerJson()).getBytes(StandardCharsets.UTF_8));
            if (tokenizer.tokenizerConfig() != null) {
                files.put("tokenizer_config.json", Json.toString(tokenizer.tokenizerConfig()).getBytes(StandardCharsets.UTF_8));
            }
        }
        String template = ChatTemplates.resolve(cfg.chatTemplate(), new ArrayList<>(folders.values()));
        if (template != null) {
            byte[] tc = files.get("tokenizer_config.json");
            ObjectNode c = tc == null ? Json.MAPPER.createObjectNode() : parse(tc);
            c.put("chat_template", template);
            files.put("tokenizer_config.json", Json.toString(c).getBytes(StandardCharsets.UTF_8));
            if (files.containsKey("chat_template.jinja")) files.put("chat_template.jinja", template.getBytes(StandardCharsets.UTF_8));
            files.remove("chat_template.json");
        }
        return files;
    }

    private static ObjectNode parse(byte[] json) {
        try {
            return (ObjectNode) Json.MAPPER.readTree(json);
        } catch (IOException | ClassCastException e) {
            throw new ConfigException("", "tokenizer_config.json is not a JSON object");
        }
    }

    /** The model card (README.md), in mergekit's layout, so hub pages of merges read alike. */
    String modelCard(String outputName) {
        Set<String> hub = new LinkedHashSet<>();
        for (ModelRef r : cfg.referencedModels()) {
            if (looksLikeHubId(r.path())) hub.add(r.path());
            if (r.hasLora() && looksLikeHubId(r.loraPath())) hub.add(r.loraPath());
        }
        StringBuilder sb = new StringBuilder("---\n");
        if (!hub.isEmpty()) {
            sb.append("base_model:\n");
            for (String h : hub) sb.append("- ").append(h).append('\n');
        }
        sb.append("library_name: transformers\ntags:\n- mergekit\n- merge\n- merge-engine\n---\n");
        sb.append("# ").append(outputName).append("\n\n");
        sb.append("This is a merge of pre-trained language models made with merge-engine.\n\n## Merge Details\n### Merge Method\n\n");
        ModelRef base = cfg.baseModel();
        sb.append("This model was merged using the `").append(method.name()).append("` method (")
                .append(method.description()).append(")");
        if (base != null && !method.name().equals("slerp")) sb.append(" using ").append(base).append(" as a base");
        sb.append(".\n\n### Models Merged\n\nThe following models were included in the merge:\n");
        for (ModelRef r : cfg.referencedModels()) if (!r.equals(base)) sb.append("* ").append(r).append('\n');
        if (cfg.sourceText() != null) {
            sb.append("\n### Configuration\n\nThe following YAML configuration was used to produce this model:\n\n```yaml\n")
                    .append(cfg.sourceText().strip()).append("\n```\n");
        }
        return sb.toString();
    }

    static boolean looksLikeHubId(String p) {
        return !p.startsWith("/") && !p.startsWith("~") && !p.startsWith(".") && p.chars().filter(c -> c == '/').count() == 1
                && !Files.exists(Path.of(p));
    }
}
