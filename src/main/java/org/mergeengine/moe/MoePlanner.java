package org.mergeengine.moe;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.MergeConfig;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.ShardLayout;
import org.mergeengine.formats.TensorInfo;
import org.mergeengine.methods.KernelContext;
import org.mergeengine.methods.MergeMethod;
import org.mergeengine.plan.MergePlan;
import org.mergeengine.plan.OutputFiles;
import org.mergeengine.plan.PermutedRows;
import org.mergeengine.plan.PlannedTensor;

/**
 * Turns an MoE layout into a merge plan the engine runs like any other: base tensors and expert
 * matrices are read from their models, fused expert tensors through a row map over the experts'
 * matrices, routers and zero biases from the small file of computed tensors. Noise generator
 * states are assigned here, walking the layout's draw order from the generator's state after the
 * gates.
 */
public final class MoePlanner {
    private MoePlanner() {}

    /** What the plan is built from. {@code experts}: routed then shared, in config order; {@code computed}: the router file. */
    public record Inputs(MoeConfig config, MoeArchitecture arch, ModelFolder base, List<ModelFolder> experts, ModelFolder computed,
                         long seed, TorchRandom afterGates, long shardSize, boolean copyTokenizer, boolean writeModelCard, List<String> warnings,
                         Map<String, int[][][]> rowMaps) {
        public Inputs(MoeConfig config, MoeArchitecture arch, ModelFolder base, List<ModelFolder> experts, ModelFolder computed, long seed,
                      TorchRandom afterGates, long shardSize, boolean copyTokenizer, boolean writeModelCard, List<String> warnings) {
            this(config, arch, base, experts, computed, seed, afterGates, shardSize, copyTokenizer, writeModelCard, warnings, new HashMap<>());
        }
    }

    /** The output dtype: the config's, else the base config's, else null (each tensor keeps its stored dtype). */
    public static DType outDType(MoeConfig cfg, ObjectNode baseConfig) {
        if (cfg.dtype() != null) return cfg.dtype();
        if (baseConfig == null) return null;
        for (String k : new String[] {"dtype", "torch_dtype"}) {
            if (baseConfig.hasNonNull(k)) {
                DType d = DType.fromConfigName(baseConfig.get(k).asText());
                if (d != null) return d;
            }
        }
        return null;
    }

    public static List<MoeConfig.Expert> allExperts(MoeConfig cfg) {
        List<MoeConfig.Expert> all = new ArrayList<>(cfg.experts());
        all.addAll(cfg.sharedExperts());
        return all;
    }

    public static MergePlan plan(Inputs in, MoeLayout layout) {
        MoeConfig cfg = in.config();
        DType out = outDType(cfg, in.base().config());
        List<MoeConfig.Expert> all = allExperts(cfg);
        Map<MoeLayout.Piece, TorchRandom> noiseStates = noiseStates(in, layout, all);
        String baseLabel = cfg.baseModel().toString();
        List<PlannedTensor> planned = new ArrayList<>();
        for (MoeLayout.OutTensor t : layout.tensors()) {
            switch (t.kind()) {
                case BASE -> {
                    ModelFolder.Located l = in.base().tensor(t.baseSource());
                    if (l == null) throw new ConfigException("base_model", "Missing weight: " + t.baseSource() + " in " + baseLabel + " (needed for " + t.name() + ")");
                    planned.add(copy(t.name(), baseLabel, l, out, in.seed()));
                }
                case ROUTER, SHARED_ROUTER, ZERO_BIAS -> {
                    ModelFolder.Located l = in.computed().tensor(t.name());
                    if (l == null) throw new IllegalStateException("the router file lacks " + t.name());
                    planned.add(copy(t.name(), "computed", l, out, in.seed()));
                }
                case EXPERTS -> planned.add(experts(in, t, all, noiseStates, out));
                default -> throw new IllegalStateException();
            }
        }
        List<ShardLayout.Entry> entries = new ArrayList<>();
        for (PlannedTensor t : planned) entries.add(new ShardLayout.Entry(t.name(), t.outDType(), t.shape()));
        ShardLayout shards = ShardLayout.plan(entries, in.shardSize(), "model");

        int e = cfg.experts().size();
        ObjectNode outCfg = MoeConfigJson.of(in.arch(), in.base().config(), e, cfg.expertsPerToken(), cfg.sharedExperts().size(), out);
        Map<String, ModelFolder> models = new LinkedHashMap<>();
        models.put(baseLabel, in.base());
        for (int i = 0; i < all.size(); i++) models.putIfAbsent(all.get(i).sourceModel().toString(), in.experts().get(i));
        List<MergeConfig.ModelEntry> entriesCfg = new ArrayList<>();
        for (MoeConfig.Expert x : all) entriesCfg.add(new MergeConfig.ModelEntry(x.sourceModel(), MergeConfig.Params.empty(x.yamlPath()), x.yamlPath()));
        MergeConfig card = new MergeConfig("moe", cfg.baseModel(), entriesCfg, null, MergeConfig.Params.empty("parameters"), cfg.dtype(), null, null,
                null, null, cfg.sourceText(), Map.of());
        MergeMethod method = ExpertMethod.card();
        OutputFiles files = OutputFiles.of(card, method, outCfg, tokenizerFiles(in), moeConfigFile(in));
        return new MergePlan(card, method, List.copyOf(planned), shards, files, in.base(), models,
                in.base().config().path("num_hidden_layers").asInt(), List.copyOf(in.warnings()), Map.of(), List.of());
    }

    /** The base's tokenizer files (written with --copy-tokenizer); mergekit-moe copies no generation config. */
    private static Map<String, byte[]> tokenizerFiles(Inputs in) {
        Map<String, byte[]> files = new LinkedHashMap<>();
        ModelFolder b = in.base();
        try {
            for (String f : ModelFolder.TOKENIZER_FILES) {
                Path p = b.tokenizerDir().resolve(f);
                if (!f.equals("generation_config.json") && Files.isRegularFile(p)) files.put(f, Files.readAllBytes(p));
            }
        } catch (IOException e) {
            throw new ConfigException("base_model", "cannot read the tokenizer files of " + b.tokenizerDir() + ": " + e.getMessage());
        }
        return files;
    }

    /** mergekit_moe_config.yml, the config as written (with --write-model-card). */
    private static Map<String, byte[]> moeConfigFile(Inputs in) {
        if (!in.writeModelCard() || in.config().sourceText() == null) return Map.of();
        return Map.of("mergekit_moe_config.yml", in.config().sourceText().getBytes(StandardCharsets.UTF_8));
    }

    private static PlannedTensor copy(String name, String label, ModelFolder.Located l, DType out, long seed) {
        long[] shape = l.info().shape();
        DType dt = out != null ? out : l.info().dtype();
        ExpertMethod m = new ExpertMethod(List.of(new ExpertMethod.Piece(l.info().numel(), l.info().dtype(), null, Double.NaN, Double.NaN)));
        KernelContext ctx = new KernelContext(m.name(), name, shape, List.of(label), -1, Map.of(), Map.of(), seed);
        return new PlannedTensor(name, shape, dt, List.of(new PlannedTensor.Input(label, l, shape, null)), m, ctx);
    }

    private static PlannedTensor experts(Inputs in, MoeLayout.OutTensor t, List<MoeConfig.Expert> all, Map<MoeLayout.Piece, TorchRandom> noise, DType out) {
        List<ModelFolder.Located> srcs = new ArrayList<>();
        List<ExpertMethod.Piece> pieces = new ArrayList<>();
        List<String> labels = new ArrayList<>();
        for (MoeLayout.Piece p : t.pieces()) {
            MoeConfig.Expert x = all.get(p.expert());
            ModelFolder.Located l = in.experts().get(p.expert()).tensor(p.sourceName());
            if (l == null) {
                throw new ConfigException(x.yamlPath() + ".source_model", "Missing weight: " + p.sourceName() + " in " + x.sourceModel()
                        + " (needed for " + t.name() + "); an expert must have the base's layers and MLP names");
            }
            srcs.add(l);
            labels.add(x.sourceModel().toString());
            boolean down = p.proj().equals("down_proj");
            pieces.add(new ExpertMethod.Piece(l.info().numel(), l.info().dtype(), noise.get(p), x.noiseScale() == null ? 0 : x.noiseScale(),
                    down && x.residualScale() != null ? x.residualScale() : Double.NaN));
        }
        DType dt = out != null ? out : srcs.get(0).info().dtype();
        ExpertMethod m = new ExpertMethod(pieces);
        long[] first = srcs.get(0).info().shape();
        PlannedTensor.Input input;
        long[] shape;
        if (srcs.size() == 1) {
            shape = first;
            input = new PlannedTensor.Input(labels.get(0), srcs.get(0), shape, null);
        } else {
            int perExpert = t.pieces().size() / countExperts(t);
            long cols = first[1];
            long rowsPerExpert = 0;
            for (int i = 0; i < perExpert; i++) rowsPerExpert += srcs.get(i).info().shape()[0];
            for (int i = 0; i < srcs.size(); i++) {
                long[] s = srcs.get(i).info().shape();
                long[] want = srcs.get(i % perExpert).info().shape();
                if (s.length != 2 || s[1] != cols || s[0] != want[0]) {
                    throw new ConfigException(all.get(t.pieces().get(i).expert()).yamlPath() + ".source_model", t.pieces().get(i).sourceName() + " of "
                            + labels.get(i) + " has shape " + Arrays.toString(s) + ", the other experts' is " + Arrays.toString(want)
                            + "; experts must share the base's MLP sizes");
                }
            }
            int experts = countExperts(t);
            shape = new long[] {experts, rowsPerExpert, cols};
            long totalRows = experts * rowsPerExpert;
            long[] pieceRows = new long[srcs.size()];
            for (int i = 0; i < srcs.size(); i++) pieceRows[i] = srcs.get(i).info().shape()[0];
            int[][][] map = in.rowMaps().computeIfAbsent(Arrays.toString(pieceRows), k -> rowMap(pieceRows));
            PermutedRows rows = new PermutedRows(totalRows, cols, List.copyOf(srcs), map[0], map[1], (int) totalRows);
            input = new PlannedTensor.Input(labels.get(0), srcs.get(0), new long[] {totalRows, cols}, null, rows);
        }
        KernelContext ctx = new KernelContext(m.name(), t.name(), shape, List.copyOf(labels), -1, Map.of(), Map.of(), in.seed());
        return new PlannedTensor(t.name(), shape, dt, List.of(input), m, ctx);
    }

    /**
     * The row map of pieces of these row counts laid end to end: output row r is row rowIds[r][0]
     * of piece rowSources[r][0]. Every layer's fused tensor has the same map, so one is kept per
     * shape (a large model's plan would otherwise hold a map per layer).
     */
    static int[][][] rowMap(long[] pieceRows) {
        long total = 0, longest = 0;
        for (long r : pieceRows) {
            total += r;
            longest = Math.max(longest, r);
        }
        int[][] ids = new int[(int) longest][];
        for (int j = 0; j < longest; j++) ids[j] = new int[] {j};
        int[][] rowSources = new int[(int) total][], rowIds = new int[(int) total][];
        int r = 0;
        for (int i = 0; i < pieceRows.length; i++) {
            int[] src = {i};
            for (int j = 0; j < pieceRows[i]; j++, r++) {
                rowSources[r] = src;
                rowIds[r] = ids[j];
            }
        }
        return new int[][][] {rowSources, rowIds};
    }

    private static int countExperts(MoeLayout.OutTensor t) {
        return (int) t.pieces().stream().mapToInt(MoeLayout.Piece::expert).distinct().count();
    }

    /** Each noised piece's generator state: the draws follow the gate draw, in the layout's noise order. */
    static Map<MoeLayout.Piece, TorchRandom> noiseStates(Inputs in, MoeLayout layout, List<MoeConfig.Expert> all) {
        Map<MoeLayout.Piece, TorchRandom> states = new LinkedHashMap<>();
        TorchRandom rng = in.afterGates().copy();
        for (MoeLayout.Piece p : layout.noiseOrder()) {
            MoeConfig.Expert x = all.get(p.expert());
            if (x.noiseScale() == null) continue;
            ModelFolder.Located l = in.experts().get(p.expert()).tensor(p.sourceName());
            if (l == null) continue; // reported when the tensor is planned
            TensorInfo info = l.info();
            states.put(p, rng.copy());
            rng.skip(TorchRandom.normalDraws(info.numel(), ExpertMethod.reduced(info.dtype())));
        }
        return states;
    }

}
