package org.mergeengine.moe;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.ModelRef;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.formats.TensorFile;
import org.mergeengine.plan.MergePlan;
import org.mergeengine.plan.ModelResolver;
import org.mergeengine.tensor.Convert;
import org.mergeengine.tokenize.PromptTokenizer;

/**
 * The steps of an MoE build before the engine writes it: open the models, choose the output
 * architecture, lay out the tensors, compute the routers (and Qwen MoE's zero biases) into a
 * small safetensors file beside the output, and plan every output tensor. The router file sits
 * at a name derived from the config, seed and base files, so a resumed run finds it and plans
 * the same bytes; it is removed once the output is complete.
 */
public final class MoeBuild {
    /** Choices from the command line. {@code forward} opens the base's forward pass (hidden gate modes). */
    public record Options(long seed, long shardSize, boolean copyTokenizer, boolean writeModelCard, Function<ModelFolder, HiddenStates> forward) {}

    /** What was decided from the configs alone (no weight read). */
    public record Layout(MoeConfig config, MoeArchitecture arch, ModelFolder base, List<ModelFolder> experts, MoeLayout layout,
                         DType outDType, List<String> warnings) {}

    private MoeBuild() {}

    /** Opens the models, checks them and chooses the output; reads configs and headers only. */
    public static Layout layout(MoeConfig cfg, ModelResolver resolver) {
        ModelFolder base = resolver.resolve(cfg.baseModel(), "base_model");
        if (base.config() == null) throw new ConfigException("base_model", cfg.baseModel() + " has no config.json");
        List<ModelFolder> experts = new ArrayList<>();
        Map<ModelRef, String> types = new LinkedHashMap<>();
        types.put(cfg.baseModel(), base.config().path("model_type").asText(null));
        List<MoeConfig.Expert> all = MoePlanner.allExperts(cfg);
        for (MoeConfig.Expert x : all) {
            ModelFolder f = resolver.resolve(x.sourceModel(), x.yamlPath() + ".source_model");
            if (f.config() == null) throw new ConfigException(x.yamlPath() + ".source_model", x.sourceModel() + " has no config.json");
            experts.add(f);
            types.put(x.sourceModel(), f.config().path("model_type").asText(null));
        }
        MoeArchitecture.Choice choice = MoeArchitecture.choose(cfg, types);
        List<String> warnings = new ArrayList<>(cfg.unknownKeys());
        warnings.addAll(choice.warnings());
        ObjectNode bc = base.config();
        int layers = intKey(bc, "num_hidden_layers", cfg), hidden = intKey(bc, "hidden_size", cfg), heads = intKey(bc, "num_attention_heads", cfg);
        int kv = bc.hasNonNull("num_key_value_heads") ? bc.get("num_key_value_heads").asInt() : heads;
        int e = cfg.experts().size();
        if (choice.arch() != MoeArchitecture.DEEPSEEK && Integer.bitCount(e) != 1) {
            warnings.add("Your model has " + e + " experts, which is not a power of two. The model will not be usable in llama.cpp.");
        }
        MoeLayout layout = MoeLayout.of(choice.arch(), layers, e, cfg.sharedExperts().size(), base.tensors().keySet(), heads, kv, hidden);
        checkTensors(cfg, base, experts, layout);
        return new Layout(cfg, choice.arch(), base, experts, layout, MoePlanner.outDType(cfg, bc), warnings);
    }

    /** Every tensor the output reads is there, and the experts' MLP matrices have the base's shapes (mergekit-moe finds out mid-write). */
    static void checkTensors(MoeConfig cfg, ModelFolder base, List<ModelFolder> experts, MoeLayout layout) {
        List<MoeConfig.Expert> all = MoePlanner.allExperts(cfg);
        for (MoeLayout.OutTensor t : layout.tensors()) {
            if (t.kind() == MoeLayout.Kind.BASE && base.tensor(t.baseSource()) == null) {
                throw new ConfigException("base_model", "Missing weight: " + t.baseSource() + " in " + cfg.baseModel() + " (needed for " + t.name()
                        + "); mergekit-moe builds MoE models from Llama, Mistral, Qwen2 and Qwen3 checkpoints");
            }
            for (MoeLayout.Piece p : t.pieces()) {
                MoeConfig.Expert x = all.get(p.expert());
                ModelFolder.Located l = experts.get(p.expert()).tensor(p.sourceName());
                if (l == null) {
                    throw new ConfigException(x.yamlPath() + ".source_model", "Missing weight: " + p.sourceName() + " in " + x.sourceModel()
                            + " (needed for " + t.name() + "); an expert must have the base's layers and MLP names");
                }
                ModelFolder.Located ref = base.tensor(p.sourceName());
                if (ref != null && !Arrays.equals(ref.info().shape(), l.info().shape())) {
                    throw new ConfigException(x.yamlPath() + ".source_model", p.sourceName() + " of " + x.sourceModel() + " has shape "
                            + Arrays.toString(l.info().shape()) + ", the base's is " + Arrays.toString(ref.info().shape())
                            + "; experts must have the base's hidden and intermediate sizes");
                }
            }
        }
    }

    private static int intKey(ObjectNode c, String key, MoeConfig cfg) {
        if (!c.hasNonNull(key) || !c.get(key).canConvertToInt()) {
            throw new ConfigException("base_model", cfg.baseModel() + "'s config.json has no integer " + key);
        }
        return c.get(key).asInt();
    }

    /** Where the router file of a build lives: beside {@code out}, named by what decides its contents. */
    public static Path routerDir(Layout l, Path out, long seed) {
        StringBuilder sb = new StringBuilder(l.config().sourceText()).append('\n').append(seed).append('\n').append(l.arch());
        for (TensorFile f : l.base().files()) sb.append('\n').append(identity(f.path()));
        Path parent = out.toAbsolutePath().getParent();
        return parent.resolve("." + out.getFileName() + ".moe-gates-" + sha256(sb.toString()).substring(0, 16));
    }

    static String identity(Path f) {
        try {
            Path real = f.toRealPath();
            return real + ":" + Files.size(real) + ":" + Files.getLastModifiedTime(real).toMillis();
        } catch (IOException e) {
            return f + ":?";
        }
    }

    static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The gates of a build (reads prompts' tokens, embeddings, or runs the base for the hidden modes). */
    public static GateBuilder.Gates gates(Layout l, Options o) {
        MoeConfig cfg = l.config();
        ObjectNode bc = l.base().config();
        int layers = bc.get("num_hidden_layers").asInt(), hidden = bc.get("hidden_size").asInt();
        if (cfg.randomGates()) return GateBuilder.random(cfg, layers, hidden, o.seed());
        if (cfg.baseModel().hasLora() && cfg.gateMode().equals("cheap_embed")) {
            throw new ConfigException("base_model", "gate_mode: cheap_embed reads the base's embedding matrix as stored; a base with a LoRA adapter ("
                    + cfg.baseModel() + ") is supported with the hidden and random gate modes");
        }
        try (PromptTokenizer tok = PromptTokenizer.open(l.base().tokenizerDir())) {
            if (cfg.gateMode().equals("cheap_embed")) return GateBuilder.cheapEmbed(cfg, l.base(), tok, layers, o.seed());
            HiddenStates fwd = o.forward().apply(l.base());
            try {
                if (fwd.numLayers() != layers || fwd.hiddenSize() != hidden) {
                    throw new IllegalStateException("forward pass shape " + fwd.numLayers() + "x" + fwd.hiddenSize() + " differs from the config's");
                }
                return GateBuilder.hidden(cfg, tok, fwd, o.seed());
            } finally {
                if (fwd instanceof AutoCloseable c) {
                    try {
                        c.close();
                    } catch (Exception ignored) {
                        // read-only model files
                    }
                }
            }
        }
    }

    /** Writes the computed tensors (routers, zero biases) of a layout into {@code dir}/model.safetensors. */
    public static void writeComputed(Layout l, GateBuilder.Gates g, Path dir) throws IOException {
        int e = l.config().experts().size();
        List<SafetensorsWriter.TensorData> data = new ArrayList<>();
        for (MoeLayout.OutTensor t : l.layout().tensors()) {
            switch (t.kind()) {
                case ROUTER, SHARED_ROUTER -> {
                    float[][] rows = g.rows()[t.layer()];
                    int from = t.kind() == MoeLayout.Kind.ROUTER ? 0 : e, to = t.kind() == MoeLayout.Kind.ROUTER ? e : rows.length;
                    if (to <= from) throw new IllegalStateException(t.name() + ": no gate rows for it");
                    int h = rows[0].length;
                    float[] v = new float[(to - from) * h];
                    for (int n = from; n < to; n++) System.arraycopy(rows[n], 0, v, (n - from) * h, h);
                    data.add(Convert.tensorData(t.name(), g.dtype(), new long[] {to - from, h}, v));
                }
                case ZERO_BIAS -> data.add(Convert.tensorData(t.name(), l.outDType() != null ? l.outDType() : DType.F32,
                        new long[] {t.length()}, new float[(int) t.length()]));
                default -> { }
            }
        }
        Files.createDirectories(dir);
        SafetensorsWriter.writeFile(dir.resolve("model.safetensors"), data);
    }

    /** The router file's folder when a complete one is there (a resumed run), else null. */
    public static ModelFolder openComputed(Layout l, Path dir) {
        if (!Files.isRegularFile(dir.resolve("model.safetensors"))) return null;
        try {
            ModelFolder f = ModelFolder.open(dir);
            for (MoeLayout.OutTensor t : l.layout().tensors()) {
                boolean computed = t.kind() == MoeLayout.Kind.ROUTER || t.kind() == MoeLayout.Kind.SHARED_ROUTER || t.kind() == MoeLayout.Kind.ZERO_BIAS;
                if (computed && f.tensor(t.name()) == null) {
                    f.close();
                    return null;
                }
            }
            return f;
        } catch (RuntimeException e) {
            return null;
        }
    }

    /** The generator's state after the gate draw (the noise follows it), without redrawing the gates' values. */
    public static TorchRandom afterGates(Layout l, long seed) {
        TorchRandom rng = new TorchRandom(seed);
        MoeConfig cfg = l.config();
        if (!cfg.randomGates()) return rng;
        ObjectNode bc = l.base().config();
        long n = (long) bc.get("num_hidden_layers").asInt() * GateBuilder.need(cfg).size() * bc.get("hidden_size").asInt();
        rng.skip(cfg.gateMode().equals("random") ? TorchRandom.normalDraws(n, false) : n);
        return rng;
    }

    /** The plan of a build whose router file is in place. */
    public static MergePlan plan(Layout l, ModelFolder computed, Options o) {
        return MoePlanner.plan(new MoePlanner.Inputs(l.config(), l.arch(), l.base(), l.experts(), computed, o.seed(), afterGates(l, o.seed()),
                o.shardSize(), o.copyTokenizer(), o.writeModelCard(), l.warnings()), l.layout());
    }

    /** mergekit-moe's warning about gate matrices close to singular, or null. */
    public static String degenerate(GateBuilder.Gates g) {
        return GateMath.degenerateWarning(GateMath.conditionNumbers(g.rows()));
    }

}
