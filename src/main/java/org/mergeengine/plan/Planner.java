package org.mergeengine.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.MergeConfig;
import org.mergeengine.config.ModelRef;
import org.mergeengine.config.ParamValue;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.ShardLayout;
import org.mergeengine.methods.KernelContext;
import org.mergeengine.methods.MergeMethod;
import org.mergeengine.methods.MethodRegistry;
import org.mergeengine.methods.ParamSpec;

/**
 * Builds a {@link MergePlan} from a config and the input models' headers. Every config and input
 * mistake surfaces here, before the engine reads a byte of tensor data.
 */
public final class Planner {
    /** One input of an output slice: a model and its layer range, with its own parameters. */
    record Source(ModelRef ref, int start, int end, MergeConfig.Params params, String yamlPath) {}

    /**
     * An output slice of one module's stack. {@code method} is the merge method, or passthrough
     * where a module is copied whole from one model; {@code moduleParams} are the module's own
     * parameters ({@code modules:}), looked up between the slice's and the top level's.
     */
    record Slice(List<Source> sources, MergeConfig.Params params, ModelRef base, String yamlPath, MergeMethod method,
                 MergeConfig.Params moduleParams) {
        int length() {
            return sources.get(0).end - sources.get(0).start;
        }

        int baseIndex() {
            if (base == null || method.baseUse() == MergeMethod.BaseUse.NONE) return -1;
            for (int i = 0; i < sources.size(); i++) if (sources.get(i).ref.equals(base)) return i;
            return -1;
        }
    }

    private final MergeConfig cfg;
    private final MergeMethod method;
    private final PlanOptions opts;
    private final Map<ModelRef, ModelFolder> folders = new LinkedHashMap<>();
    private final Map<ModelRef, ModelLayout> layouts = new HashMap<>();
    private final List<String> warnings = new ArrayList<>();
    private final List<PlannedTensor> planned = new ArrayList<>();
    private final Set<String> outNames = new HashSet<>();
    private final Map<String, String> moduleOfOutput = new HashMap<>();
    private final List<String> notes = new ArrayList<>();
    private TokenizerMerge tokenizer;

    private Planner(MergeConfig cfg, PlanOptions opts) {
        this.cfg = cfg;
        this.opts = opts;
        this.method = MethodRegistry.get(cfg.mergeMethod(), "merge_method");
    }

    /** Checks that need no model at all (method name, parameter names and ranges of the YAML itself). */
    public static void checkConfig(MergeConfig cfg) {
        MethodRegistry.get(cfg.mergeMethod(), "merge_method");
        if (cfg.chatTemplate() != null) ChatTemplates.resolve(cfg.chatTemplate().equals("auto") ? null : cfg.chatTemplate(), List.of());
    }

    public static MergePlan plan(MergeConfig cfg, ModelResolver resolver, PlanOptions opts) {
        return new Planner(cfg, opts).build(resolver);
    }

    private MergePlan build(ModelResolver resolver) {
        checkConfig(cfg);
        warnIgnoredParameters();
        warnings.addAll(UnreadParameters.check(cfg));
        resolveModels(resolver);
        checkArchitectures();
        ModelRef donorRef = cfg.baseModel() != null ? cfg.baseModel() : cfg.referencedModels().get(0);
        if (cfg.tokenizer() != null) {
            MergeConfig.TokenizerSpec ts = cfg.tokenizer();
            ModelFolder src = ts.sourceModel() == null ? null
                    : folders.containsKey(ts.sourceModel()) ? folders.get(ts.sourceModel()) : resolver.resolve(ts.sourceModel(), ts.yamlPath());
            tokenizer = new TokenizerMerge(ts, folders, donorRef, src);
        }
        ModelLayout donorLayout = layouts.get(donorRef);
        Map<String, List<Slice>> work = moduleSlices(donorLayout);
        for (List<Slice> slices : work.values()) {
            for (Slice s : slices) {
                int bi = s.baseIndex();
                if (s.base != null && bi < 0 && s.method.baseUse() == MergeMethod.BaseUse.REQUIRED) {
                    throw new ConfigException(s.yamlPath.isEmpty() ? "base_model" : s.yamlPath + ".sources",
                            s.method.name() + ": base model " + s.base + " must be one of the slice's sources");
                }
                s.method.checkInputs(s.sources.size() - (bi >= 0 ? 1 : 0), bi >= 0, s.yamlPath.isEmpty() ? "models" : s.yamlPath);
            }
        }

        List<OutputFiles.StackEdit> stackEdits = new ArrayList<>();
        int mainLayers = 0;
        for (Map.Entry<String, List<Slice>> e : work.entrySet()) {
            String module = e.getKey();
            List<Slice> slices = e.getValue();
            Slice first = slices.get(0), last = slices.get(slices.size() - 1);
            planEdge(module, first, true);
            int counter = 0;
            List<OutputFiles.Origin> origins = new ArrayList<>();
            for (Slice s : slices) {
                int len = s.length();
                for (int j = 0; j < len; j++) {
                    double t = len > 1 ? j / (double) (len - 1) : 1.0;
                    planLayer(module, s, j, counter + j, t);
                    Source src = s.sources.get(0);
                    origins.add(new OutputFiles.Origin(src.ref.toString(), folders.get(src.ref).config(), src.start + j,
                            layouts.get(src.ref).module(module).numLayers()));
                }
                counter += len;
            }
            planEdge(module, last, false);
            ModelLayout.Module dm = donorLayout.module(module);
            if (dm.stack() != null) {
                stackEdits.add(new OutputFiles.StackEdit(module, dm.stack().countKeys(), dm.configPath(), dm.numLayers(), origins));
            }
            if (module.equals(donorLayout.main().name())) mainLayers = counter;
        }
        int counter = mainLayers;

        // Read in the order the bytes lie on disk: by first input's model, shard and offset.
        List<ModelRef> order = new ArrayList<>(folders.keySet());
        Map<String, Integer> modelRank = new HashMap<>();
        for (int i = 0; i < order.size(); i++) modelRank.put(order.get(i).toString(), i);
        planned.sort(Comparator.<PlannedTensor>comparingInt(t -> modelRank.get(t.inputs().get(0).model()))
                .thenComparingInt(t -> {
                    ModelFolder.Located l = t.inputs().get(0).source();
                    return folderOf(t.inputs().get(0).model()).fileIndex(l.file());
                })
                .thenComparingLong(t -> t.inputs().get(0).source().info().begin()));

        List<ShardLayout.Entry> entries = new ArrayList<>();
        for (PlannedTensor t : planned) entries.add(new ShardLayout.Entry(t.name(), t.outDType(), t.shape()));
        ShardLayout layout = ShardLayout.plan(entries, opts.outShardSize(), "model");

        ModelFolder donor = folders.get(donorRef);
        OutputFiles files = OutputFiles.compose(cfg, method, donorRef, donor, folders, tokenizer, planned, stackEdits, warnings);
        Map<String, ModelFolder> byLabel = new LinkedHashMap<>();
        folders.forEach((r, f) -> byLabel.put(r.toString(), f));
        Map<String, String> moduleOf = new LinkedHashMap<>();
        for (PlannedTensor t : planned) moduleOf.put(t.name(), moduleOfOutput.get(t.name()));
        return new MergePlan(cfg, method, List.copyOf(planned), layout, files, donor, byLabel, counter, List.copyOf(warnings),
                moduleOf, List.copyOf(notes));
    }

    /** Global parameters written under a model are never read there (as in mergekit): say so. */
    private void warnIgnoredParameters() {
        Set<String> globals = new HashSet<>();
        for (ParamSpec p : method.parameters()) if (!p.perModel()) globals.add(p.name());
        List<MergeConfig.Params> perModel = new ArrayList<>();
        if (cfg.models() != null) for (MergeConfig.ModelEntry m : cfg.models()) perModel.add(m.parameters());
        if (cfg.slices() != null) for (MergeConfig.OutputSlice s : cfg.slices()) for (MergeConfig.InputSlice i : s.sources()) perModel.add(i.parameters());
        if (cfg.modules() != null) for (MergeConfig.ModuleSpec m : cfg.modules().values()) {
            if (m.models() != null) for (MergeConfig.ModelEntry e : m.models()) perModel.add(e.parameters());
            if (m.slices() != null) for (MergeConfig.OutputSlice s : m.slices()) for (MergeConfig.InputSlice i : s.sources()) perModel.add(i.parameters());
        }
        for (MergeConfig.Params p : perModel) {
            for (String k : p.values().keySet()) {
                if (globals.contains(k)) {
                    warnings.add(p.yamlPath() + "." + k + " has no effect: '" + k + "' is a global parameter of " + method.name()
                            + "; put it under the top-level or slice parameters");
                }
            }
        }
    }

    private ModelFolder folderOf(String label) {
        for (Map.Entry<ModelRef, ModelFolder> e : folders.entrySet()) if (e.getKey().toString().equals(label)) return e.getValue();
        throw new IllegalStateException(label);
    }

    private void resolveModels(ModelResolver resolver) {
        Map<ModelRef, String> paths = new LinkedHashMap<>();
        List<List<MergeConfig.ModelEntry>> modelLists = new ArrayList<>();
        List<List<MergeConfig.OutputSlice>> sliceLists = new ArrayList<>();
        if (cfg.models() != null) modelLists.add(cfg.models());
        if (cfg.slices() != null) sliceLists.add(cfg.slices());
        if (cfg.modules() != null) for (MergeConfig.ModuleSpec m : cfg.modules().values()) {
            if (m.models() != null) modelLists.add(m.models());
            if (m.slices() != null) sliceLists.add(m.slices());
        }
        for (List<MergeConfig.ModelEntry> ms : modelLists) for (MergeConfig.ModelEntry m : ms) paths.putIfAbsent(m.model(), m.yamlPath() + ".model");
        for (List<MergeConfig.OutputSlice> ss : sliceLists) for (MergeConfig.OutputSlice s : ss) {
            for (MergeConfig.InputSlice i : s.sources()) paths.putIfAbsent(i.model(), i.yamlPath() + ".model");
            if (s.baseModel() != null) paths.putIfAbsent(s.baseModel(), s.yamlPath() + ".base_model");
        }
        if (cfg.baseModel() != null) paths.putIfAbsent(cfg.baseModel(), "base_model");
        for (Map.Entry<ModelRef, String> e : paths.entrySet()) {
            ModelFolder f = resolver.resolve(e.getKey(), e.getValue());
            folders.put(e.getKey(), f);
            layouts.put(e.getKey(), ModelLayout.of(e.getKey().toString(), f));
        }
    }

    private void checkArchitectures() {
        String seen = null;
        ModelRef seenBy = null;
        for (Map.Entry<ModelRef, ModelFolder> e : folders.entrySet()) {
            ObjectNode c = e.getValue().config();
            if (c == null) continue;
            JsonNode a = c.get("architectures");
            String arch = a != null && a.isArray() && a.size() > 0 ? a.get(0).asText() : null;
            if (arch == null) continue;
            if (seen == null) {
                seen = arch;
                seenBy = e.getKey();
            } else if (!seen.equals(arch) && !opts.allowCrimes()) {
                throw new ConfigException("", "models of different architectures: " + seenBy + " is " + seen + ", " + e.getKey() + " is " + arch
                        + "; pass --allow-crimes to merge them anyway");
            }
        }
    }

    /**
     * The output slices of every module, the donor's modules in order. {@code models:} merges
     * every module, each over its own layers; {@code slices:} slices the language model's stack
     * and copies every other module whole from one model (the base, else the first slice's);
     * {@code modules:} gives each module its own models or slices.
     */
    private Map<String, List<Slice>> moduleSlices(ModelLayout donorLayout) {
        Map<String, List<Slice>> out = new LinkedHashMap<>();
        Map<String, ModelLayout.Module> mods = donorLayout.modules();
        if (cfg.modules() != null) {
            for (String name : cfg.modules().keySet()) {
                if (!mods.containsKey(name)) {
                    throw new ConfigException("modules." + name, "the models have no module '" + name + "'; their modules are " + String.join(", ", mods.keySet()));
                }
            }
            for (String name : mods.keySet()) {
                MergeConfig.ModuleSpec spec = cfg.modules().get(name);
                if (spec == null) {
                    throw new ConfigException("modules", "module '" + name + "' has no entry; give every module of the model (" + String.join(", ", mods.keySet())
                            + ") its models: or slices:");
                }
                out.put(name, spec.models() != null ? modelsSlices(name, spec.models(), spec.parameters(), spec.yamlPath() + ".models")
                        : sliced(name, spec.slices(), spec.parameters()));
            }
            return out;
        }
        if (cfg.models() != null) {
            for (String name : mods.keySet()) out.put(name, modelsSlices(name, cfg.models(), MergeConfig.Params.empty(""), "models"));
            return out;
        }
        String main = donorLayout.main().name();
        if (mods.containsKey("encoder") && mods.containsKey("decoder")) {
            throw new ConfigException("slices", "the models have an encoder and a decoder stack; slices: would cut only one of them. "
                    + "Use modules: {encoder: {slices: ...}, decoder: {slices: ...}} to give each its layers");
        }
        ModelRef whole = cfg.baseModel() != null ? cfg.baseModel() : cfg.slices().get(0).sources().get(0).model();
        MergeMethod copy = MethodRegistry.get("passthrough", "merge_method");
        for (String name : mods.keySet()) {
            if (name.equals(main)) {
                out.put(name, sliced(name, cfg.slices(), MergeConfig.Params.empty("")));
            } else {
                ModelLayout.Module m = layouts.get(whole).module(name);
                if (m == null) throw new ConfigException("", "model " + whole + " has no module '" + name + "' to copy");
                Source src = new Source(whole, 0, m.numLayers(), MergeConfig.Params.empty(""), "slices");
                out.put(name, List.of(new Slice(List.of(src), MergeConfig.Params.empty(""), null, "", copy, MergeConfig.Params.empty(""))));
                notes.add("module " + name + " is copied whole from " + whole + " (outside the sliced " + main + ")");
            }
        }
        return out;
    }

    private ModelLayout.Module moduleOf(ModelRef ref, String module, String yamlPath) {
        ModelLayout.Module m = layouts.get(ref).module(module);
        if (m == null) {
            throw new ConfigException(yamlPath, "model " + ref + " has no module '" + module + "' (it has " + String.join(", ", layouts.get(ref).modules().keySet()) + ")");
        }
        return m;
    }

    private List<Slice> modelsSlices(String module, List<MergeConfig.ModelEntry> models, MergeConfig.Params moduleParams, String yamlPath) {
        List<Source> src = new ArrayList<>();
        for (MergeConfig.ModelEntry m : models) {
            src.add(new Source(m.model(), 0, moduleOf(m.model(), module, m.yamlPath()).numLayers(), m.parameters(), m.yamlPath()));
        }
        ModelRef base = cfg.baseModel();
        boolean listed = base != null && src.stream().anyMatch(s -> s.ref.equals(base));
        if (base != null && !listed && method.baseUse() != MergeMethod.BaseUse.NONE) {
            src.add(new Source(base, 0, moduleOf(base, module, "base_model").numLayers(), MergeConfig.Params.empty("base_model"), "base_model"));
            // Methods that take the base as their reference are written this way in mergekit's docs; only an averaged-in base surprises.
            String w = "base model " + base + " is not listed under models; " + method.name() + " averages it in as an input (as in mergekit)";
            if (method.baseUse() == MergeMethod.BaseUse.ORDINARY && !warnings.contains(w)) warnings.add(w);
        }
        Set<Integer> counts = new LinkedHashSet<>();
        for (Source s : src) counts.add(s.end);
        if (counts.size() > 1) {
            StringBuilder sb = new StringBuilder();
            for (Source s : src) sb.append(sb.length() == 0 ? "" : ", ").append(s.ref).append(" has ").append(s.end);
            String what = module.equals("default") ? "layer counts" : "layer counts in module " + module;
            throw new ConfigException(yamlPath, "the models have different " + what + " (" + sb + "); use slices: with layer_range to choose layers");
        }
        return List.of(new Slice(src, MergeConfig.Params.empty(""), base, "", method, moduleParams));
    }

    private List<Slice> sliced(String module, List<MergeConfig.OutputSlice> slices, MergeConfig.Params moduleParams) {
        List<Slice> out = new ArrayList<>();
        for (MergeConfig.OutputSlice os : slices) {
            List<Source> src = new ArrayList<>();
            int len = -1;
            for (MergeConfig.InputSlice in : os.sources()) {
                int n = moduleOf(in.model(), module, in.yamlPath()).numLayers();
                int a = 0, b = n;
                if (in.layerRange() != null) {
                    a = in.layerRange()[0];
                    b = in.layerRange()[1];
                    if (b > n) {
                        String stack = module.equals("default") ? "" : " in module " + module;
                        throw new ConfigException(in.yamlPath() + ".layer_range", "[" + a + ", " + b + "] runs past the end of " + in.model()
                                + ", which has " + n + " layers" + stack + " (0.." + (n - 1) + "); the end is exclusive");
                    }
                }
                if (len >= 0 && b - a != len) {
                    throw new ConfigException(os.yamlPath() + ".sources", "all inputs to a slice must contain the same number of layers (found " + len + " and " + (b - a) + ")");
                }
                len = b - a;
                src.add(new Source(in.model(), a, b, in.parameters(), in.yamlPath()));
            }
            ModelRef base = os.baseModel() != null ? os.baseModel() : cfg.baseModel();
            out.add(new Slice(src, os.parameters(), base, os.yamlPath(), method, moduleParams));
        }
        return out;
    }

    /** The module's tensors before its stack (first slice) or after it (last slice); evaluated at t = 0. */
    private void planEdge(String module, Slice s, boolean pre) {
        LinkedHashSet<String> names = new LinkedHashSet<>();
        for (Source src : s.sources) {
            ModelLayout.Module m = layouts.get(src.ref).module(module);
            names.addAll(pre ? m.pre() : m.post());
        }
        for (String name : names) {
            if (ModelLayout.isLmHead(name)) {
                // lm_head is optional: planned when some source has one; the others read their tied embedding.
                boolean any = s.sources.stream().anyMatch(src -> folders.get(src.ref).tensor(name) != null);
                if (!any) continue;
            }
            List<String> inputNames = new ArrayList<>();
            for (int k = 0; k < s.sources.size(); k++) inputNames.add(name);
            planTensor(module, name, s, inputNames, 0.0);
        }
    }

    private void planLayer(String module, Slice s, int j, int outIndex, double t) {
        LinkedHashSet<String> suffixes = new LinkedHashSet<>();
        for (Source src : s.sources) suffixes.addAll(layouts.get(src.ref).module(module).stack().layer(src.start + j).keySet());
        String outPrefix = layouts.get(s.sources.get(0).ref).module(module).stack().prefix();
        for (String suffix : suffixes) {
            List<String> inputNames = new ArrayList<>();
            for (Source src : s.sources) {
                ModelLayout.Stack l = layouts.get(src.ref).module(module).stack();
                String in = l.layer(src.start + j).get(suffix);
                if (in == null) {
                    int elsewhere = -1;
                    for (int k = 0; k < l.numLayers() && elsewhere < 0; k++) if (l.layer(k).containsKey(suffix)) elsewhere = k;
                    String hint = elsewhere >= 0 ? "; model " + src.ref + " has it only in some layers (layer " + elsewhere + "), as T5 keeps its position bias in"
                            + " the first block: choose layer ranges that line such layers up" : "; the models must share their layer structure";
                    throw new ConfigException(src.yamlPath, "tensor '" + l.prefix() + (src.start + j) + "." + suffix + "' is missing from model "
                            + src.ref + " (other inputs of this slice have it)" + hint);
                }
                inputNames.add(in);
            }
            planTensor(module, outPrefix + outIndex + "." + suffix, s, inputNames, t);
        }
    }

    private void planTensor(String module, String outName, Slice s, List<String> inputNames, double t) {
        if (!outNames.add(outName)) throw new ConfigException(s.yamlPath, "output tensor " + outName + " would be written twice");
        moduleOfOutput.put(outName, module);
        int baseIdx = s.baseIndex();
        List<Source> srcs = new ArrayList<>(s.sources);
        List<ModelFolder.Located> located = new ArrayList<>();
        for (int k = 0; k < srcs.size(); k++) {
            Source src = srcs.get(k);
            ModelFolder f = folders.get(src.ref);
            String in = inputNames.get(k);
            ModelFolder.Located l = f.tensor(in);
            if (l == null && ModelLayout.isLmHead(in)) {
                String tied = layouts.get(src.ref).inputEmbedding(layouts.get(src.ref).module(module));
                if (tied != null) l = f.tensor(tied);
            }
            if (l == null) {
                throw new ConfigException(src.yamlPath, "tensor '" + in + "' is missing from model " + src.ref + " (" + f.dir() + ")");
            }
            located.add(l);
        }
        boolean embed = ModelLayout.isLmHead(outName) || ModelLayout.isInputEmbedding(outName);
        boolean vocabMatrix = embed && ModelLayout.isVocabularyName(outName) && located.stream().allMatch(l -> l.info().rank() == 2);
        if (tokenizer != null && vocabMatrix) {
            planVocabMatrix(outName, s, srcs, located, baseIdx, inputNames, t);
            return;
        }
        long[][] views = new long[srcs.size()][];
        boolean same = true;
        for (int k = 0; k < srcs.size(); k++) {
            views[k] = located.get(k).info().shape().clone();
            same &= Arrays.equals(views[k], views[0]);
        }
        boolean[] drop = new boolean[srcs.size()];
        if (!same) reconcileShapes(outName, s.method, srcs, located, views, drop, baseIdx, embed);

        List<PlannedTensor.Input> inputs = new ArrayList<>();
        List<Source> kept = new ArrayList<>();
        int keptBase = -1;
        for (int k = 0; k < srcs.size(); k++) {
            if (drop[k]) continue;
            if (k == baseIdx) keptBase = kept.size();
            kept.add(srcs.get(k));
            DType stored = located.get(k).info().dtype();
            DType cast = cfg.dtype() != null && stored.isFloating() ? cfg.dtype() : null;
            inputs.add(new PlannedTensor.Input(srcs.get(k).ref.toString(), located.get(k), views[k], cast));
        }
        finishTensor(outName, s, inputNames, t, inputs, kept, keptBase);
    }

    /** A vocabulary matrix under a merged tokenizer: every model's matrix rebuilt for the output vocabulary. */
    private void planVocabMatrix(String outName, Slice s, List<Source> srcs, List<ModelFolder.Located> located, int baseIdx,
                                 List<String> inputNames, double t) {
        long cols = located.get(0).info().shape()[1];
        List<ModelRef> refs = new ArrayList<>();
        for (int k = 0; k < srcs.size(); k++) {
            refs.add(srcs.get(k).ref);
            if (located.get(k).info().shape()[1] != cols) {
                throw new ConfigException(srcs.get(k).yamlPath, "tensor " + outName + " of " + srcs.get(k).ref + " has " + located.get(k).info().shape()[1]
                        + " columns, other inputs have " + cols);
            }
        }
        List<PlannedTensor.Input> inputs = new ArrayList<>();
        for (int k = 0; k < srcs.size(); k++) {
            PermutedRows rows = tokenizer.rows(k, refs, located, baseIdx, outName);
            DType stored = located.get(k).info().dtype();
            DType cast = cfg.dtype() != null && stored.isFloating() ? cfg.dtype() : null;
            inputs.add(new PlannedTensor.Input(srcs.get(k).ref.toString(), located.get(k), new long[] {rows.rows(), cols}, cast, rows));
        }
        finishTensor(outName, s, inputNames, t, inputs, srcs, baseIdx);
    }

    private void finishTensor(String outName, Slice s, List<String> inputNames, double t, List<PlannedTensor.Input> inputs,
                              List<Source> kept, int keptBase) {
        long[] shape = inputs.get(0).view();

        Map<String, Double> globals = new LinkedHashMap<>();
        Map<String, double[]> perModel = new LinkedHashMap<>();
        for (ParamSpec spec : s.method.parameters()) {
            if (spec.perModel()) {
                double[] v = new double[kept.size()];
                for (int k = 0; k < kept.size(); k++) {
                    Source src = kept.get(k);
                    Double d = lookup(spec.name(), levels(src.params, s), inputNames.get(s.sources.indexOf(src)), t);
                    if (d == null) {
                        boolean exempt = k == keptBase && s.method.baseUse() != MergeMethod.BaseUse.ORDINARY;
                        if (spec.required() && !exempt) {
                            throw new ConfigException(src.yamlPath + ".parameters." + spec.name(), s.method.name() + " needs '" + spec.name()
                                    + "' for model " + src.ref + " (tensor " + inputNames.get(s.sources.indexOf(src)) + "); set it under this model's parameters, the slice's, or the top-level parameters");
                        }
                        d = spec.defaultValue();
                    }
                    v[k] = d;
                }
                perModel.put(spec.name(), v);
            } else {
                Double d = lookup(spec.name(), levels(null, s), outName, t);
                if (d == null) {
                    if (spec.required()) {
                        throw new ConfigException("parameters." + spec.name(), s.method.name() + " needs the parameter '" + spec.name()
                                + "' (tensor " + outName + "); set it under the top-level or slice parameters");
                    }
                    d = spec.defaultValue();
                }
                globals.put(spec.name(), d);
            }
        }
        List<String> labels = new ArrayList<>();
        for (PlannedTensor.Input i : inputs) labels.add(i.model());
        KernelContext ctx = new KernelContext(s.method.name(), outName, shape, labels, keptBase, globals, perModel, opts.seed());
        s.method.checkParameters(ctx);
        planned.add(new PlannedTensor(outName, shape, outDType(s.method, inputs, keptBase), List.copyOf(inputs), s.method, ctx));
    }

    private void reconcileShapes(String outName, MergeMethod method, List<Source> srcs, List<ModelFolder.Located> located, long[][] views,
                                 boolean[] drop, int baseIdx, boolean embed) {
        boolean matrices = Arrays.stream(views).allMatch(v -> v.length == 2);
        String shapes = describeShapes(srcs, views);
        if (method.shapeRule() == MergeMethod.ShapeRule.TO_BASE && baseIdx >= 0) {
            long[] b = views[baseIdx];
            for (int k = 0; k < srcs.size(); k++) {
                if (k == baseIdx || Arrays.equals(views[k], b)) continue;
                if (embed && matrices) {
                    if (views[k][0] < b[0] || views[k][1] < b[1]) {
                        throw new ConfigException(srcs.get(k).yamlPath, "tensor " + outName + " of " + srcs.get(k).ref + " is smaller than the base's (" + shapes
                                + "); set tokenizer_source (or a tokenizer: block) to rebuild the vocabulary matrices");
                    }
                    views[k] = b.clone();
                    warnings.add(outName + ": " + srcs.get(k).ref + " cut to the base's shape " + Arrays.toString(b) + " (" + shapes + ")");
                } else {
                    drop[k] = true;
                    warnings.add(outName + ": " + srcs.get(k).ref + " left out, its shape differs from the base's (" + shapes + ")");
                }
            }
            return;
        }
        if (!(embed && matrices)) {
            throw new ConfigException("", "tensor size mismatch for " + outName + ": " + shapes);
        }
        long r = Long.MAX_VALUE, c = Long.MAX_VALUE;
        for (long[] v : views) {
            r = Math.min(r, v[0]);
            c = Math.min(c, v[1]);
        }
        for (int k = 0; k < views.length; k++) views[k] = new long[] {r, c};
        warnings.add(outName + ": using the common sub-matrix [" + r + ", " + c + "] of " + shapes);
    }

    private static String describeShapes(List<Source> srcs, long[][] views) {
        StringBuilder sb = new StringBuilder();
        for (int k = 0; k < srcs.size(); k++) sb.append(k == 0 ? "" : ", ").append(srcs.get(k).ref).append(' ').append(Arrays.toString(views[k]));
        return sb.toString();
    }

    private DType outDType(MergeMethod method, List<PlannedTensor.Input> inputs, int baseIdx) {
        boolean allFloat = inputs.stream().allMatch(i -> i.source().info().dtype().isFloating());
        if (!allFloat) return inputs.get(0).source().info().dtype();
        if (cfg.outDtype() != null) return cfg.outDtype();
        if (cfg.dtype() != null) return cfg.dtype();
        switch (method.resultDType()) {
            case BASE:
                return inputs.get(Math.max(baseIdx, 0)).source().info().dtype();
            case SOURCE:
                return inputs.get(0).source().info().dtype();
            default:
                DType d = inputs.get(0).source().info().dtype();
                for (PlannedTensor.Input i : inputs) d = DType.promote(d, i.source().info().dtype());
                return d;
        }
    }

    /** Parameter levels, first match wins: the source's, the slice's, the module's, the top level's (a copied module reads none of the merge's). */
    private List<MergeConfig.Params> levels(MergeConfig.Params source, Slice s) {
        List<MergeConfig.Params> l = new ArrayList<>();
        if (source != null) l.add(source);
        l.add(s.params);
        l.add(s.moduleParams);
        if (s.method == method) l.add(cfg.parameters());
        return l;
    }

    private static Double lookup(String name, List<MergeConfig.Params> levels, String tensorName, double t) {
        for (MergeConfig.Params p : levels) {
            if (p == null) continue;
            ParamValue v = p.get(name);
            if (v == null) continue;
            Double d = v.evaluate(tensorName, t);
            if (d != null) return d;
        }
        return null;
    }
}
