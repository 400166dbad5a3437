package org.mergeengine.plan;

import com.fasterxml.jackson.databind.JsonNode;
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
 * Every file of the output folder besides the weights and their index: config.json (the donor's,
 * with the keys the merge changes), the tokenizer and chat template, and the model card. Composed
 * at planning time from the inputs' files, so that the engine only writes bytes it is handed.
 */
public final class OutputFiles {
    private final MergeConfig cfg;
    private final MergeMethod method;
    private final ObjectNode config;
    private final Map<String, byte[]> tokenizerFiles;
    private final boolean tokenizerBuilt;

    private OutputFiles(MergeConfig cfg, MergeMethod method, ObjectNode config, Map<String, byte[]> tokenizerFiles, boolean tokenizerBuilt) {
        this.cfg = cfg;
        this.method = method;
        this.config = config;
        this.tokenizerFiles = tokenizerFiles;
        this.tokenizerBuilt = tokenizerBuilt;
    }

    /** What the planner decided that config.json must say. */
    record ConfigEdits(Map<String, Integer> layerCounts) {}

    static OutputFiles compose(MergeConfig cfg, MergeMethod method, ModelRef donorRef, ModelFolder donor, Map<ModelRef, ModelFolder> folders,
                               TokenizerMerge tokenizer, List<PlannedTensor> planned, ConfigEdits edits, List<String> warnings) {
        ObjectNode outCfg = outputConfig(cfg, donorRef, donor, planned, edits, warnings);
        if (tokenizer != null) {
            outCfg.put("vocab_size", tokenizer.paddedSize());
            warnings.addAll(tokenizer.warnings());
        }
        Map<String, byte[]> tok = tokenizerFiles(cfg, tokenizer, donor, folders);
        return new OutputFiles(cfg, method, outCfg, tok, tokenizer != null);
    }

    /** The output's config.json as a tree. */
    public ObjectNode config() {
        return config;
    }

    /** The tokenizer files of the output: the merged tokenizer, or the donor's files, with the chat template applied. */
    public Map<String, byte[]> tokenizerFiles() {
        return tokenizerFiles;
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
        if (copyTokenizer || tokenizerBuilt) out.putAll(tokenizerFiles);
        if (modelCard) {
            if (cfg.sourceText() != null) out.put("mergekit_config.yml", cfg.sourceText().getBytes(StandardCharsets.UTF_8));
            out.put("README.md", modelCard(outputName).getBytes(StandardCharsets.UTF_8));
        }
        return out;
    }

    private static ObjectNode outputConfig(MergeConfig cfg, ModelRef donorRef, ModelFolder donor, List<PlannedTensor> planned,
                                           ConfigEdits edits, List<String> warnings) {
        if (donor.config() == null) {
            throw new ConfigException("", "model " + donorRef + " (" + donor.dir() + ") has no config.json; the output's config.json is taken from it");
        }
        ObjectNode c = donor.config().deepCopy();
        edits.layerCounts().forEach((key, n) -> setAt(c, key, n));
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
        for (PlannedTensor t : planned) {
            if (ModelLayout.isInputEmbedding(t.name()) && !t.name().contains("wpe") && t.shape().length == 2) {
                JsonNode vs = c.get("vocab_size");
                if (vs != null && vs.isIntegralNumber() && vs.asLong() != t.shape()[0]) {
                    warnings.add("config.json vocab_size set to " + t.shape()[0] + " (the embedding rows) instead of the donor's " + vs.asLong());
                    c.put("vocab_size", t.shape()[0]);
                }
                break;
            }
        }
        return c;
    }

    static void setAt(ObjectNode root, String dotted, int value) {
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
        try {
            for (String f : ModelFolder.TOKENIZER_FILES) {
                Path p = from.tokenizerDir().resolve(f);
                if (!Files.isRegularFile(p) && f.equals("generation_config.json")) p = from.dir().resolve(f);
                if (Files.isRegularFile(p)) files.put(f, Files.readAllBytes(p));
            }
        } catch (IOException e) {
            throw new ConfigException("", "cannot read the tokenizer files of " + from.tokenizerDir() + ": " + e.getMessage());
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
