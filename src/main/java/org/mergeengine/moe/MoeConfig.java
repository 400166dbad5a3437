package org.mergeengine.moe;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.config.ModelRef;
import org.mergeengine.config.Names;
import org.mergeengine.formats.DType;

/**
 * A mergekit-moe config: a dense base and the experts (and shared experts) whose MLPs make the
 * MoE layers, with the prompts that place each expert's router row. Parsing checks types and
 * names; {@link #validate} applies mergekit-moe's rules. Both name the YAML path of a mistake.
 *
 * @param dtype the output dtype, or null for the base config's
 * @param sharedExperts never null (an absent list is empty, as mergekit treats it)
 * @param unknownKeys keys mergekit-moe ignores; reported as warnings, never an error
 */
public record MoeConfig(ModelRef baseModel, String gateMode, DType dtype, int expertsPerToken, List<Expert> experts,
                        List<Expert> sharedExperts, String architecture, String sourceText, List<String> unknownKeys) {

    /** One expert: the model whose MLP it is, and how it is routed and perturbed. */
    public record Expert(ModelRef sourceModel, List<String> positivePrompts, List<String> negativePrompts, Double noiseScale,
                         Double residualScale, String yamlPath) {
        public boolean hasPrompts() {
            return !positivePrompts.isEmpty() || !negativePrompts.isEmpty();
        }
    }

    public static final List<String> GATE_MODES = List.of("hidden", "hidden_last", "hidden_avg", "cheap_embed", "random", "uniform_random");
    static final Set<String> TOP_KEYS = Set.of("base_model", "gate_mode", "dtype", "experts_per_token", "experts", "shared_experts", "architecture");
    static final Set<String> EXPERT_KEYS = Set.of("source_model", "positive_prompts", "negative_prompts", "noise_scale", "residual_scale");

    public boolean randomGates() {
        return gateMode.equals("random") || gateMode.equals("uniform_random");
    }

    /** Every model the config names (base, experts, shared experts), in config order, once each. */
    public List<ModelRef> models() {
        LinkedHashSet<ModelRef> s = new LinkedHashSet<>();
        s.add(baseModel);
        for (Expert e : experts) s.add(e.sourceModel());
        for (Expert e : sharedExperts) s.add(e.sourceModel());
        return List.copyOf(s);
    }

    public static MoeConfig parseFile(Path file) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new ConfigException(null, file + ": cannot read the config (" + e.getMessage() + ")");
        }
        try {
            return parse(text);
        } catch (ConfigException e) {
            throw new ConfigException(null, file.getFileName() + ": " + e.getMessage());
        }
    }

    public static MoeConfig parse(String text) {
        List<JsonNode> docs = ConfigParser.readDocuments(text);
        if (docs.size() != 1) throw new ConfigException(null, "a mergekit-moe config is one YAML document, found " + docs.size());
        JsonNode root = docs.get(0);
        if (!root.isObject()) throw new ConfigException(null, "the config must be a mapping of keys (base_model, experts, ...)");
        List<String> unknown = new ArrayList<>();
        unknownKeys(root, TOP_KEYS, "", unknown);
        ModelRef base = ref(root.get("base_model"), "base_model");
        String gateMode = root.hasNonNull("gate_mode") ? text(root.get("gate_mode"), "gate_mode") : "hidden";
        DType dtype = null;
        if (root.hasNonNull("dtype")) {
            String d = text(root.get("dtype"), "dtype");
            dtype = DType.fromConfigName(d);
            if (dtype == null) throw new ConfigException("dtype", "unknown dtype '" + d + "'; use one of " + DType.CONFIG_NAMES);
        }
        int k = 2;
        if (root.hasNonNull("experts_per_token")) {
            JsonNode n = root.get("experts_per_token");
            if (!n.canConvertToInt() || !n.isIntegralNumber()) throw new ConfigException("experts_per_token", "must be an integer, found " + n);
            k = n.asInt();
        }
        if (!root.hasNonNull("experts")) throw new ConfigException("experts", "required: a list of experts, each with a source_model");
        List<Expert> experts = experts(root.get("experts"), "experts", unknown);
        List<Expert> shared = root.hasNonNull("shared_experts") ? experts(root.get("shared_experts"), "shared_experts", unknown) : List.of();
        String arch = root.hasNonNull("architecture") ? text(root.get("architecture"), "architecture") : null;
        return new MoeConfig(base, gateMode, dtype, k, experts, shared, arch, text, List.copyOf(unknown));
    }

    private static List<Expert> experts(JsonNode n, String p, List<String> unknown) {
        if (!n.isArray()) throw new ConfigException(p, "must be a list of experts, found " + n.getNodeType().name().toLowerCase());
        List<Expert> out = new ArrayList<>();
        for (int i = 0; i < n.size(); i++) {
            String q = p + "[" + i + "]";
            JsonNode e = n.get(i);
            if (!e.isObject()) throw new ConfigException(q, "must be a mapping with source_model (and prompts)");
            unknownKeys(e, EXPERT_KEYS, q + ".", unknown);
            out.add(new Expert(ref(e.get("source_model"), q + ".source_model"), prompts(e.get("positive_prompts"), q + ".positive_prompts"),
                    prompts(e.get("negative_prompts"), q + ".negative_prompts"), number(e.get("noise_scale"), q + ".noise_scale"),
                    number(e.get("residual_scale"), q + ".residual_scale"), q));
        }
        return List.copyOf(out);
    }

    private static void unknownKeys(JsonNode obj, Set<String> allowed, String prefix, List<String> out) {
        for (Iterator<String> it = obj.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (allowed.contains(k)) continue;
            out.add(prefix + k + ": unknown key, ignored as mergekit-moe ignores it" + Names.suggestion(k, allowed));
        }
    }

    private static List<String> prompts(JsonNode n, String p) {
        if (n == null || n.isNull()) return List.of();
        if (!n.isArray()) throw new ConfigException(p, "must be a list of strings");
        List<String> out = new ArrayList<>();
        for (int i = 0; i < n.size(); i++) {
            if (!n.get(i).isTextual()) throw new ConfigException(p + "[" + i + "]", "must be a string, found " + n.get(i));
            out.add(n.get(i).asText());
        }
        return List.copyOf(out);
    }

    private static Double number(JsonNode n, String p) {
        if (n == null || n.isNull()) return null;
        if (!n.isNumber()) throw new ConfigException(p, "must be a number, found " + n);
        return n.asDouble();
    }

    private static String text(JsonNode n, String p) {
        if (!n.isTextual()) throw new ConfigException(p, "must be a string, found " + n);
        return n.asText();
    }

    private static ModelRef ref(JsonNode n, String p) {
        if (n == null || n.isNull()) throw new ConfigException(p, "required: a model path or hub repository id");
        if (n.isTextual()) return ModelRef.parse(n.asText(), p);
        if (n.isObject() && n.has("model")) {
            String[] m = pathRev(n.get("model"), p + ".model");
            String[] l = n.hasNonNull("lora") ? pathRev(n.get("lora"), p + ".lora") : new String[] {null, null};
            return new ModelRef(m[0], m[1], l[0], l[1]);
        }
        throw new ConfigException(p, "must be a model reference (a path, hub id, or {model, lora}), found " + n);
    }

    private static String[] pathRev(JsonNode n, String p) {
        if (n.isTextual()) {
            ModelRef r = ModelRef.parse(n.asText(), p);
            return new String[] {r.path(), r.revision()};
        }
        if (n.isObject() && n.hasNonNull("path")) {
            return new String[] {n.get("path").asText(), n.hasNonNull("revision") ? n.get("revision").asText() : null};
        }
        throw new ConfigException(p, "must be a path string or {path, revision}");
    }

    /**
     * mergekit-moe's rules, in its order, before any model is opened. {@code sameModelsAllowed} is
     * --i-understand-this-is-not-useful-without-training. An unknown gate_mode, which mergekit only
     * trips over while computing gates, is refused here.
     */
    public void validate(boolean sameModelsAllowed) {
        if (!GATE_MODES.contains(gateMode)) {
            throw new ConfigException("gate_mode", "unknown gate mode '" + gateMode + "'" + Names.suggestion(gateMode, GATE_MODES)
                    + "; use one of " + String.join(", ", GATE_MODES));
        }
        if (expertsPerToken < 1) throw new ConfigException("experts_per_token", "Experts per token must be >= 1");
        if (experts.size() < expertsPerToken) {
            throw new ConfigException("experts", "Must include at least as many experts as experts_per_token (" + expertsPerToken + "), found "
                    + experts.size() + (experts.size() == 1 ? "; a single expert needs experts_per_token: 1" : ""));
        }
        if (gateMode.equals("random")) return;
        for (int i = 0; i < experts.size(); i++) {
            if (experts.get(i).positivePrompts().isEmpty()) {
                throw new ConfigException("experts[" + i + "].positive_prompts", "Expert " + i + " has no positive prompts."
                        + (gateMode.equals("uniform_random") ? " (uniform_random does not read them, but mergekit-moe requires them; gate_mode: random does not)" : ""));
            }
        }
        Expert first = experts.get(0);
        boolean allSame = experts.stream().allMatch(e -> e.positivePrompts().equals(first.positivePrompts())
                && e.negativePrompts().equals(first.negativePrompts()));
        if (allSame) {
            throw new ConfigException("experts", "Your positive and negative prompts are identical for all experts. This will not produce a functioning MoE. "
                    + "For each expert, you must provide at least one positive prompt unique to that expert"
                    + (experts.size() == 1 ? " (a single-expert MoE is only possible with gate_mode: random)" : "") + ".");
        }
        if (!sameModelsAllowed && experts.stream().allMatch(e -> e.sourceModel().equals(first.sourceModel()))) {
            throw new ConfigException("experts", "All of your expert models are the same. This will produce a model that uses more resources but "
                    + "gives the exact same output. If you plan to train the model after merging, proceed with the "
                    + "--i-understand-this-is-not-useful-without-training flag.");
        }
    }
}
