package org.mergeengine.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeType;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.mergeengine.formats.DType;

/**
 * Reads mergekit YAML into {@link MergeConfig}. Structure, types and names are checked here, each
 * mistake reported with its YAML path and what would be valid; nothing here touches a model.
 */
public final class ConfigParser {
    static final Set<String> TOP_KEYS = Set.of("merge_method", "base_model", "models", "slices", "modules",
            "parameters", "dtype", "out_dtype", "tokenizer_source", "tokenizer", "chat_template", "name");
    static final Set<String> MODEL_KEYS = Set.of("model", "parameters");
    static final Set<String> MODULE_KEYS = Set.of("models", "slices", "parameters");
    static final Set<String> SLICE_KEYS = Set.of("sources", "parameters", "base_model", "residual_weight");
    static final Set<String> SOURCE_KEYS = Set.of("model", "layer_range", "parameters");
    static final Set<String> TOKENIZER_KEYS = Set.of("source", "tokens", "pad_to_multiple_of");
    static final Set<String> TOKEN_KEYS = Set.of("source", "force");

    private ConfigParser() {}

    public static MergeConfig parseFile(Path file) {
        String text = readText(file);
        try {
            return parse(text);
        } catch (ConfigException e) {
            throw new ConfigException(null, file.getFileName() + ": " + e.getMessage());
        }
    }

    /** Parses a single-document config. */
    public static MergeConfig parse(String text) {
        List<JsonNode> docs = readDocuments(text);
        if (docs.size() != 1) {
            throw new ConfigException(null, "the file holds " + docs.size() + " YAML documents; a multi-stage file runs with the 'multi' command");
        }
        return fromTree(docs.get(0), text);
    }

    /** Every non-empty YAML document of a file (documents are separated by '---'), aliases resolved as PyYAML does. */
    public static List<JsonNode> readDocuments(String text) {
        List<JsonNode> docs = YamlDocuments.read(text);
        if (docs.isEmpty()) throw new ConfigException(null, "the config is empty");
        return docs;
    }

    /** A config file's text; one too large to be a config is refused before it is read. */
    public static String readText(Path file) {
        try {
            if (Files.size(file) > YamlDocuments.MAX_CHARS * 4L) { // UTF-8: at most 4 bytes a character
                throw new ConfigException(null, file + ": " + Files.size(file) + " bytes; configs over " + (YamlDocuments.MAX_CHARS >> 20)
                        + " MiB are refused (a merge config is a few kilobytes)");
            }
            return Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new ConfigException(null, file + ": cannot read the config (" + e.getMessage() + ")");
        }
    }

    public static MergeConfig fromTree(JsonNode root, String sourceText) {
        if (!root.isObject()) throw new ConfigException("", "the config must be a mapping of keys (merge_method, models or slices, ...), found " + kind(root));
        checkKeys(root, TOP_KEYS, "");
        JsonNode mm = root.get("merge_method");
        if (mm == null || mm.isNull()) throw new ConfigException("merge_method", "required: name the merge method (for example 'linear')");
        if (!mm.isTextual()) throw new ConfigException("merge_method", "must be a method name, found " + kind(mm));
        String method = mm.asText().trim();

        ModelRef base = optRef(root.get("base_model"), "base_model");
        boolean hasModels = root.hasNonNull("models"), hasSlices = root.hasNonNull("slices"), hasModules = root.hasNonNull("modules");
        if ((hasModels ? 1 : 0) + (hasSlices ? 1 : 0) + (hasModules ? 1 : 0) != 1) {
            throw new ConfigException("", hasModules ? "give modules: alone, not with models: or slices:"
                    : hasModels ? "give either models: or slices:, not both" : "missing models: or slices: (the inputs of the merge)");
        }
        List<MergeConfig.ModelEntry> models = hasModels ? models(root.get("models"), "models") : null;
        List<MergeConfig.OutputSlice> slices = hasSlices ? slices(root.get("slices"), "slices") : null;
        Map<String, MergeConfig.ModuleSpec> modules = hasModules ? modules(root.get("modules")) : null;
        MergeConfig.Params global = params(root.get("parameters"), "parameters");
        DType dtype = dtype(root.get("dtype"), "dtype");
        DType outDtype = dtype(root.get("out_dtype"), "out_dtype");
        MergeConfig.TokenizerSpec tok = tokenizer(root);
        String chat = null;
        JsonNode ct = root.get("chat_template");
        if (ct != null && !ct.isNull()) {
            if (!ct.isTextual()) throw new ConfigException("chat_template", "must be 'auto', a built-in name or a template string");
            chat = ct.asText();
        }
        String name = null;
        JsonNode nm = root.get("name");
        if (nm != null && !nm.isNull()) {
            if (!nm.isTextual() || nm.asText().isBlank()) throw new ConfigException("name", "must be a non-empty string");
            name = nm.asText();
        }
        return new MergeConfig(method, base, models, slices, global, dtype, outDtype, tok, chat, name, sourceText, modules);
    }

    /** {@code modules:}: each module's own models: or slices:, and parameters. */
    private static Map<String, MergeConfig.ModuleSpec> modules(JsonNode ms) {
        if (!ms.isObject() || ms.isEmpty()) throw new ConfigException("modules", "must map module names (text_decoder, vision_tower, ...) to {models | slices, parameters}");
        Map<String, MergeConfig.ModuleSpec> out = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = ms.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String p = "modules." + e.getKey();
            JsonNode m = e.getValue();
            if (!m.isObject()) throw new ConfigException(p, "must be a mapping {models | slices, parameters}, found " + kind(m));
            checkKeys(m, MODULE_KEYS, p);
            boolean hm = m.hasNonNull("models"), hs = m.hasNonNull("slices");
            if (hm == hs) throw new ConfigException(p, "give exactly one of models: and slices: for this module");
            out.put(e.getKey(), new MergeConfig.ModuleSpec(e.getKey(), hm ? models(m.get("models"), p + ".models") : null,
                    hs ? slices(m.get("slices"), p + ".slices") : null, params(m.get("parameters"), p + ".parameters"), p));
        }
        return out;
    }

    private static List<MergeConfig.ModelEntry> models(JsonNode ms, String path) {
        if (!ms.isArray() || ms.isEmpty()) throw new ConfigException(path, "must be a non-empty list of {model, parameters}");
        List<MergeConfig.ModelEntry> models = new ArrayList<>();
        for (int i = 0; i < ms.size(); i++) {
            String p = path + "[" + i + "]";
            JsonNode m = ms.get(i);
            if (m.isTextual()) {
                models.add(new MergeConfig.ModelEntry(ModelRef.parse(m.asText(), p), MergeConfig.Params.empty(p + ".parameters"), p));
                continue;
            }
            if (!m.isObject()) throw new ConfigException(p, "must be a mapping {model: ..., parameters: ...}, found " + kind(m));
            checkKeys(m, MODEL_KEYS, p);
            ModelRef ref = reqRef(m.get("model"), p + ".model");
            models.add(new MergeConfig.ModelEntry(ref, params(m.get("parameters"), p + ".parameters"), p));
        }
        return models;
    }

    private static List<MergeConfig.OutputSlice> slices(JsonNode ss, String path) {
        if (!ss.isArray() || ss.isEmpty()) throw new ConfigException(path, "must be a non-empty list of {sources: [...]}");
        List<MergeConfig.OutputSlice> slices = new ArrayList<>();
        for (int i = 0; i < ss.size(); i++) {
            String p = path + "[" + i + "]";
            JsonNode s = ss.get(i);
            if (!s.isObject()) throw new ConfigException(p, "must be a mapping {sources: [...]}, found " + kind(s));
            checkKeys(s, SLICE_KEYS, p);
            JsonNode src = s.get("sources");
            if (src == null || !src.isArray() || src.isEmpty()) throw new ConfigException(p + ".sources", "required: a non-empty list of {model, layer_range}");
            List<MergeConfig.InputSlice> sources = new ArrayList<>();
            for (int j = 0; j < src.size(); j++) {
                String q = p + ".sources[" + j + "]";
                JsonNode in = src.get(j);
                if (!in.isObject()) throw new ConfigException(q, "must be a mapping {model, layer_range}, found " + kind(in));
                checkKeys(in, SOURCE_KEYS, q);
                ModelRef ref = reqRef(in.get("model"), q + ".model");
                sources.add(new MergeConfig.InputSlice(ref, layerRange(in.get("layer_range"), q + ".layer_range"),
                        params(in.get("parameters"), q + ".parameters"), q));
            }
            int len = -1;
            for (MergeConfig.InputSlice in : sources) {
                if (in.layerRange() == null) continue;
                int l = in.layerRange()[1] - in.layerRange()[0];
                if (len >= 0 && l != len) {
                    throw new ConfigException(p + ".sources", "all inputs to a slice must contain the same number of layers (found " + len + " and " + l + ")");
                }
                len = l;
            }
            slices.add(new MergeConfig.OutputSlice(sources, params(s.get("parameters"), p + ".parameters"),
                    optRef(s.get("base_model"), p + ".base_model"), p));
        }
        return slices;
    }

    private static MergeConfig.TokenizerSpec tokenizer(JsonNode root) {
        JsonNode legacy = root.get("tokenizer_source");
        JsonNode block = root.get("tokenizer");
        boolean hasLegacy = legacy != null && !legacy.isNull(), hasBlock = block != null && !block.isNull();
        if (hasLegacy && hasBlock) throw new ConfigException("tokenizer_source", "give either tokenizer_source or tokenizer:, not both");
        if (hasLegacy) {
            if (!legacy.isTextual()) throw new ConfigException("tokenizer_source", "must be 'base', 'union' or a model reference");
            return sourceSpec(legacy.asText(), "tokenizer_source", Map.of(), null, true);
        }
        if (!hasBlock) return null;
        if (!block.isObject()) throw new ConfigException("tokenizer", "must be a mapping {source, tokens, pad_to_multiple_of}");
        checkKeys(block, TOKENIZER_KEYS, "tokenizer");
        String source = "union";
        JsonNode s = block.get("source");
        if (s != null && !s.isNull()) {
            if (!s.isTextual()) throw new ConfigException("tokenizer.source", "must be 'base', 'union' or a model reference");
            source = s.asText();
        }
        Integer pad = null;
        JsonNode p = block.get("pad_to_multiple_of");
        if (p != null && !p.isNull()) {
            if (!p.isIntegralNumber() || exactInt(p, "tokenizer.pad_to_multiple_of") <= 0) throw new ConfigException("tokenizer.pad_to_multiple_of", "must be a positive integer");
            pad = p.asInt();
        }
        Map<String, MergeConfig.TokenSpec> tokens = new LinkedHashMap<>();
        JsonNode t = block.get("tokens");
        if (t != null && !t.isNull()) {
            if (!t.isObject()) throw new ConfigException("tokenizer.tokens", "must map token strings to {source, force}");
            for (Iterator<Map.Entry<String, JsonNode>> it = t.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                String tp = "tokenizer.tokens." + e.getKey();
                tokens.put(e.getKey(), tokenSpec(e.getValue(), tp));
            }
        }
        return sourceSpec(source, "tokenizer.source", tokens, pad, false);
    }

    private static MergeConfig.TokenizerSpec sourceSpec(String source, String path, Map<String, MergeConfig.TokenSpec> tokens, Integer pad, boolean legacy) {
        String s = source.trim();
        if (s.equals("union") || s.equals("base")) return new MergeConfig.TokenizerSpec(s, null, tokens, pad, legacy, path);
        return new MergeConfig.TokenizerSpec("model", ModelRef.parse(s, path), tokens, pad, legacy, path);
    }

    private static MergeConfig.TokenSpec tokenSpec(JsonNode v, String p) {
        if (!v.isObject()) throw new ConfigException(p, "must be a mapping {source: ..., force: ...}");
        checkKeys(v, TOKEN_KEYS, p);
        boolean force = v.hasNonNull("force") && v.get("force").asBoolean(false);
        JsonNode src = v.get("source");
        if (src == null || src.isNull()) {
            throw new ConfigException(p + ".source", "required: a model reference, {kind: model_token, model, token_id | token} or {kind: zero}");
        }
        if (src.isTextual()) return new MergeConfig.TokenSpec("model", ModelRef.parse(src.asText(), p + ".source"), null, null, force, p);
        if (!src.isObject()) throw new ConfigException(p + ".source", "must be a model reference or a mapping with 'kind'");
        String kind = src.hasNonNull("kind") ? src.get("kind").asText() : "";
        switch (kind) {
            case "zero":
                return new MergeConfig.TokenSpec("zero", null, null, null, force, p);
            case "model_token": {
                ModelRef m = reqRef(src.get("model"), p + ".source.model");
                boolean hasId = src.hasNonNull("token_id"), hasTok = src.hasNonNull("token");
                if (hasId == hasTok) throw new ConfigException(p + ".source", "model_token needs exactly one of token_id and token");
                if (hasId && !src.get("token_id").isIntegralNumber()) throw new ConfigException(p + ".source.token_id", "must be an integer");
                return new MergeConfig.TokenSpec("model_token", m, hasId ? exactInt(src.get("token_id"), p + ".source.token_id") : null,
                        hasTok ? src.get("token").asText() : null, force, p);
            }
            default:
                throw new ConfigException(p + ".source.kind", "must be 'model_token' or 'zero', found '" + kind + "'");
        }
    }

    private static int[] layerRange(JsonNode n, String p) {
        if (n == null || n.isNull()) return null;
        if (!n.isArray() || n.size() != 2 || !n.get(0).isIntegralNumber() || !n.get(1).isIntegralNumber()) {
            throw new ConfigException(p, "must be [start, end]: two integers, end exclusive");
        }
        int a = exactInt(n.get(0), p), b = exactInt(n.get(1), p);
        if (a < 0 || b <= a) throw new ConfigException(p, "[" + a + ", " + b + "] is not a valid range: need 0 <= start < end");
        return new int[] {a, b};
    }

    /** An integer as written: one too large for the engine is refused with its own digits, never wrapped around. */
    static int exactInt(JsonNode n, String p) {
        if (!n.canConvertToInt()) throw new ConfigException(p, n.asText() + " is out of range (integers here are at most " + Integer.MAX_VALUE + ")");
        return n.asInt();
    }

    private static DType dtype(JsonNode n, String p) {
        if (n == null || n.isNull()) return null;
        DType d = n.isTextual() ? DType.fromConfigName(n.asText()) : null;
        if (d == null) throw new ConfigException(p, "unknown dtype '" + n.asText() + "'; valid: " + DType.CONFIG_NAMES);
        return d;
    }

    static ModelRef reqRef(JsonNode n, String p) {
        ModelRef r = optRef(n, p);
        if (r == null) throw new ConfigException(p, "required: a model path or hub repository id");
        return r;
    }

    static ModelRef optRef(JsonNode n, String p) {
        if (n == null || n.isNull()) return null;
        if (n.isTextual()) return ModelRef.parse(n.asText(), p);
        if (n.isObject()) {
            // object form: {model: {path, revision} | str, lora: {path, revision} | str, override_architecture}
            JsonNode m = n.get("model");
            if (m == null) throw new ConfigException(p, "an object model reference needs a 'model' key");
            String[] mp = pathRev(m, p + ".model");
            String[] lp = n.hasNonNull("lora") ? pathRev(n.get("lora"), p + ".lora") : new String[] {null, null};
            return new ModelRef(mp[0], mp[1], lp[0], lp[1]);
        }
        throw new ConfigException(p, "must be a model reference string, found " + kind(n));
    }

    private static String[] pathRev(JsonNode n, String p) {
        if (n.isTextual()) {
            ModelRef r = ModelRef.parse(n.asText(), p);
            if (r.hasLora()) throw new ConfigException(p, "use the 'lora' key for the adapter in an object reference");
            return new String[] {r.path(), r.revision()};
        }
        if (n.isObject() && n.hasNonNull("path")) {
            return new String[] {n.get("path").asText(), n.hasNonNull("revision") ? n.get("revision").asText() : null};
        }
        throw new ConfigException(p, "must be a path string or {path, revision}");
    }

    static MergeConfig.Params params(JsonNode n, String p) {
        if (n == null || n.isNull()) return MergeConfig.Params.empty(p);
        if (!n.isObject()) throw new ConfigException(p, "must be a mapping of parameter names to values, found " + kind(n));
        Map<String, ParamValue> out = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = n.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (e.getValue().isNull()) continue;
            out.put(e.getKey(), setting(e.getValue(), p + "." + e.getKey(), true));
        }
        return new MergeConfig.Params(java.util.Collections.unmodifiableMap(out), p);
    }

    static ParamValue setting(JsonNode v, String p, boolean allowConditional) {
        if (v.isNumber()) return new ParamValue.Scalar(v.asDouble());
        if (v.isBoolean()) return new ParamValue.Scalar(v.asBoolean() ? 1.0 : 0.0);
        if (v.isArray()) {
            if (v.isEmpty()) throw new ConfigException(p, "an empty list is not a valid value; give a number, a gradient [a, b, ...] or [{filter, value}, ...]");
            boolean allNum = true, allObj = true;
            for (JsonNode x : v) {
                allNum &= x.isNumber() || x.isBoolean();
                allObj &= x.isObject();
            }
            if (allNum) {
                double[] g = new double[v.size()];
                for (int i = 0; i < g.length; i++) g[i] = v.get(i).isBoolean() ? (v.get(i).asBoolean() ? 1 : 0) : v.get(i).asDouble();
                return new ParamValue.Gradient(g);
            }
            if (allObj && allowConditional) {
                List<ParamValue.Filtered> entries = new ArrayList<>();
                for (int i = 0; i < v.size(); i++) entries.add(filtered(v.get(i), p + "[" + i + "]"));
                return new ParamValue.Conditional(entries);
            }
            throw new ConfigException(p, "a list must be all numbers (a gradient) or all {filter, value} entries");
        }
        if (v.isObject() && allowConditional) return new ParamValue.Conditional(List.of(filtered(v, p)));
        throw new ConfigException(p, "must be a number, a gradient (list of numbers) or a list of {filter, value}; found " + kind(v)
                + (v.isTextual() ? " '" + v.asText() + "'" : ""));
    }

    private static ParamValue.Filtered filtered(JsonNode e, String p) {
        checkKeys(e, Set.of("filter", "value"), p);
        JsonNode val = e.get("value");
        if (val == null || val.isNull()) throw new ConfigException(p + ".value", "required in a {filter, value} entry");
        JsonNode f = e.get("filter");
        String filter = null;
        if (f != null && !f.isNull()) {
            if (!f.isTextual()) throw new ConfigException(p + ".filter", "must be a string (matched as a substring of tensor names)");
            filter = f.asText();
        }
        return new ParamValue.Filtered(filter, setting(val, p + ".value", false));
    }

    static void checkKeys(JsonNode obj, Set<String> allowed, String p) {
        for (Iterator<String> it = obj.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (!allowed.contains(k)) {
                String where = p.isEmpty() ? k : p + "." + k;
                throw new ConfigException(where, "unknown key '" + k + "'" + Names.suggestion(k, allowed)
                        + "; valid here: " + String.join(", ", new java.util.TreeSet<>(allowed)));
            }
        }
    }

    static String kind(JsonNode n) {
        JsonNodeType t = n.getNodeType();
        switch (t) {
            case ARRAY: return "a list";
            case OBJECT: return "a mapping";
            case STRING: return "a string";
            case NUMBER: return "a number";
            case BOOLEAN: return "a boolean";
            case NULL: return "null";
            default: return t.name().toLowerCase(java.util.Locale.ROOT);
        }
    }
}
