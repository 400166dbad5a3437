package org.mergeengine.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.mergeengine.MergeException;
import org.mergeengine.api.MergeService;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.ModelRef;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.engine.OutputFolder;
import org.mergeengine.engine.Progress;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.hub.HubModelResolver;
import org.mergeengine.hub.HubSettings;
import org.mergeengine.moe.ForwardHiddenStates;
import org.mergeengine.moe.GateBuilder;
import org.mergeengine.moe.MoeBuild;
import org.mergeengine.moe.MoeConfig;
import org.mergeengine.moe.MoeConfigJson;
import org.mergeengine.moe.MoeLayout;
import org.mergeengine.plan.LocalModelResolver;
import org.mergeengine.plan.MergePlan;
import org.mergeengine.plan.ModelResolver;
import org.mergeengine.plan.PlanOptions;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code moe CONFIG OUT_DIR}: mergekit-moe. Builds a Mixtral / DeepSeek MoE / Qwen MoE / Qwen3 MoE
 * checkpoint from a dense base and experts; the engine writes it like any merge.
 */
@Command(name = "moe", mixinStandardHelpOptions = true,
        description = "Builds a mixture-of-experts model from a dense base and expert models (mergekit-moe's YAML).")
final class MoeCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "CONFIG", description = "mergekit-moe YAML config")
    Path config;

    @Parameters(index = "1", paramLabel = "OUT_DIR", description = "output folder")
    Path out;

    @Option(names = "--i-understand-this-is-not-useful-without-training",
            description = "allow every expert to be the same model (sparse upcycling, to be trained afterwards)")
    boolean sameModels;

    @Option(names = "--random-seed", paramLabel = "N", description = "seed of the random gate modes and of noise_scale, drawn as torch draws them (default 42)")
    long seed = PlanOptions.DEFAULT_SEED;

    @Option(names = "--dry-run", description = "print the output architecture, tensors and config changes; compute and write nothing")
    boolean dryRun;

    @Option(names = "--device", paramLabel = "NAME", description = "accepted for mergekit-moe's command lines; the forward pass of the hidden gate modes runs on the CPU lanes")
    String device;

    @Option(names = {"--cuda", "--gpu-rich"}, description = "accepted for mergekit-moe's command lines (as --device)")
    boolean cuda;

    @Option(names = "--load-in-4bit", description = "accepted and unnecessary: the hidden gate modes stream the base one layer at a time at full precision")
    boolean in4;

    @Option(names = "--load-in-8bit", description = "accepted and unnecessary (as --load-in-4bit)")
    boolean in8;

    @Option(names = "--out-shard-size", paramLabel = "SIZE", description = "bytes per output shard, e.g. 5B, 500M (default 5B)")
    String outShardSize = "5B";

    @Option(names = "--copy-tokenizer", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "copy the base model's tokenizer files (default on)")
    boolean copyTokenizer = true;

    @Option(names = "--write-model-card", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "write README.md and mergekit_moe_config.yml (default on)")
    boolean writeModelCard = true;

    @Option(names = "--max-memory", paramLabel = "SIZE", description = "budget for tensor data in flight (default: half the JVM heap)")
    String maxMemory;

    @Option(names = {"--workers", "-j", "--num-threads"}, paramLabel = "N", description = "worker lanes, also the forward pass's (default: number of CPUs)")
    Integer workers;

    @Option(names = "--cache-dir", paramLabel = "DIR", description = "hub cache folder (default: HF_HUB_CACHE, else HF_HOME/hub)")
    Path cacheDir;

    @Option(names = "--offline", description = "use the hub cache only, no network (also HF_HUB_OFFLINE=1)")
    boolean offline;

    @Option(names = {"--trust-remote-code", "--lazy-unpickle", "--allow-crimes", "--clone-tensors", "--safe-serialization", "--async-write",
            "--low-cpu-memory", "--read-to-gpu", "--multi-gpu"}, hidden = true, description = "mergekit options that change nothing here")
    boolean[] ignored = new boolean[0];

    @Option(names = "-v", description = "more output (with --dry-run: every output tensor and its sources)")
    boolean[] verbose = new boolean[0];

    @Option(names = "--quiet", description = "no progress output")
    boolean quiet;

    private final PrintStream stdout;
    private final PrintStream stderr;

    MoeCommand(PrintStream stdout, PrintStream stderr) {
        this.stdout = stdout;
        this.stderr = stderr;
    }

    @Override
    public Integer call() {
        long shard, budget;
        try {
            shard = Sizes.parse(outShardSize);
            budget = maxMemory == null ? MergeOptions.defaultBudget() : Sizes.parse(maxMemory);
        } catch (IllegalArgumentException e) {
            throw MergeException.user(e.getMessage());
        }
        if (workers != null && workers < 1) throw MergeException.user("--workers must be at least 1");
        if (!Files.isRegularFile(config)) throw MergeException.user(config + ": no such config file");
        MoeConfig cfg = MoeConfig.parseFile(config);
        try {
            cfg.validate(sameModels);
        } catch (ConfigException e) {
            throw new ConfigException(null, config.getFileName() + ": " + e.getMessage());
        }
        if ((in4 || in8) && !quiet) {
            stderr.println("note: --load-in-" + (in4 ? "4" : "8") + "bit is not needed: the hidden gate modes run the base one layer at a time, "
                    + "so memory holds one layer and the prompts' activations, at full precision");
        }
        if ((device != null && !device.equals("cpu") || cuda) && !quiet) {
            stderr.println("note: the forward pass runs on the CPU worker lanes; --device/--cuda change nothing here");
        }
        if (!dryRun) OutputFolder.check(out);
        int lanes = workers != null ? workers : Runtime.getRuntime().availableProcessors();
        List<Path> search = List.of(Path.of("").toAbsolutePath(), config.toAbsolutePath().getParent());
        HubSettings hub = HubSettings.fromEnvironment(System.getenv(), cacheDir, offline);
        boolean local = allLocal(cfg, search);
        MoeBuild.Options o = new MoeBuild.Options(seed, shard, copyTokenizer, writeModelCard, base -> ForwardHiddenStates.open(base, lanes));
        long t0 = System.nanoTime();
        if (local) {
            try (LocalModelResolver r = new LocalModelResolver(search)) {
                MoeBuild.Layout l = layout(cfg, r);
                if (dryRun) return printPlan(l, lanes, budget);
                try (MergeService svc = new MergeService(hub)) {
                    return build(svc, l, o, lanes, budget, t0);
                }
            }
        }
        try (MergeService svc = new MergeService(hub)) {
            try (HubModelResolver headers = svc.resolver(search, HubModelResolver.Mode.HEADERS)) {
                MoeBuild.Layout l = layout(cfg, headers); // every check before any weight is downloaded
                if (dryRun) return printPlan(l, lanes, budget);
            }
            try (HubModelResolver full = svc.resolver(search, HubModelResolver.Mode.FULL)) {
                return build(svc, layout(cfg, full), o, lanes, budget, t0);
            }
        }
    }

    private MoeBuild.Layout layout(MoeConfig cfg, ModelResolver r) {
        try {
            return MoeBuild.layout(cfg, r);
        } catch (ConfigException e) {
            throw new ConfigException(null, config.getFileName() + ": " + e.getMessage());
        }
    }

    private static boolean allLocal(MoeConfig cfg, List<Path> search) {
        LocalModelResolver local = new LocalModelResolver(search);
        for (ModelRef r : cfg.models()) {
            if (local.locate(r.withoutLora()) == null) return false;
            if (r.hasLora() && local.locate(new ModelRef(r.loraPath(), r.loraRevision(), null, null)) == null) return false;
        }
        return true;
    }

    private int build(MergeService svc, MoeBuild.Layout l, MoeBuild.Options o, int lanes, long budget, long t0) {
        setLogLevel();
        for (String w : l.warnings()) stderr.println("warning: " + w);
        Path gatesDir = MoeBuild.routerDir(l, out, seed);
        ModelFolder computed = MoeBuild.openComputed(l, gatesDir);
        if (computed == null) {
            if (!quiet) stderr.println("computing " + l.config().gateMode() + " gates for " + l.arch().displayName() + " ...");
            GateBuilder.Gates g = MoeBuild.gates(l, o);
            String warn = MoeBuild.degenerate(g);
            if (warn != null) stderr.println("warning: " + warn);
            try {
                MoeBuild.writeComputed(l, g, gatesDir);
            } catch (IOException e) {
                throw MergeException.user("cannot write the router file in " + gatesDir + ": " + e.getMessage());
            }
            computed = ModelFolder.open(gatesDir);
        } else if (!quiet) {
            stderr.println("reusing the gates computed by an interrupted run (" + gatesDir.getFileName() + ")");
        }
        try {
            MergePlan plan = MoeBuild.plan(l, computed, o);
            MergeOptions opts = new MergeOptions(lanes, budget, MergeOptions.DEFAULT_CHUNK, copyTokenizer, writeModelCard, null);
            if (!quiet) opts = opts.withProgress(new ProgressPrinter(stderr, System.console() != null));
            Progress p = svc.engine().run(plan, out, opts);
            if (p.resumedParts() > 0) stderr.println("resumed an interrupted run: " + p.resumedParts() + " finished part(s) were verified and kept");
            if (!quiet) {
                stderr.println(String.format(Locale.ROOT, "wrote a %s model with %d experts (%d tensors, %s) in %.2fs into %s", l.arch().displayName(),
                        l.config().experts().size(), p.tensorsTotal(), Sizes.human(plan.outputBytes()), (System.nanoTime() - t0) / 1e9, out));
            }
        } catch (RuntimeException | Error e) {
            // a failed run's temporary output is gone, so its gates would never be reused (a killed run keeps both)
            computed.close();
            OutputFolder.deleteTree(gatesDir);
            throw e;
        }
        computed.close();
        OutputFolder.deleteTree(gatesDir);
        return 0;
    }

    private void setLogLevel() {
        String level = quiet ? "ERROR" : verbose.length == 0 ? "WARN" : verbose.length == 1 ? "INFO" : "DEBUG";
        ((ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME))
                .setLevel(ch.qos.logback.classic.Level.toLevel(level));
    }

    private int printPlan(MoeBuild.Layout l, int lanes, long budget) {
        MoeConfig cfg = l.config();
        for (String w : l.warnings()) stderr.println("warning: " + w);
        stdout.println("output architecture: " + l.arch().displayName());
        stdout.println("base model:          " + cfg.baseModel());
        for (int i = 0; i < cfg.experts().size(); i++) stdout.println("expert " + i + ":            " + cfg.experts().get(i).sourceModel());
        for (MoeConfig.Expert s : cfg.sharedExperts()) stdout.println("shared expert:       " + s.sourceModel());
        stdout.println("gate mode:           " + cfg.gateMode() + (cfg.randomGates() ? " (seed " + seed + ")" : ""));
        stdout.println("experts per token:   " + cfg.expertsPerToken());
        stdout.println("output dtype:        " + (l.outDType() == null ? "as stored" : l.outDType().torchName()));
        long bytes = 0;
        int count = 0;
        for (MoeLayout.OutTensor t : l.layout().tensors()) {
            long[] shape = shape(l, t);
            long n = 1;
            for (long d : shape) n *= d;
            bytes += n * (l.outDType() != null ? l.outDType().size() : 2);
            count++;
            if (verbose.length > 0) {
                StringBuilder sb = new StringBuilder("  ").append(t.name()).append(' ').append(Arrays.toString(shape)).append(" <- ");
                switch (t.kind()) {
                    case BASE -> sb.append("base:").append(t.baseSource());
                    case EXPERTS -> {
                        for (MoeLayout.Piece p : t.pieces()) sb.append(p.expert() < cfg.experts().size() ? "expert " + p.expert() : "shared").append(':').append(p.proj()).append(' ');
                    }
                    case ROUTER -> sb.append("router (").append(cfg.gateMode()).append(')');
                    case SHARED_ROUTER -> sb.append("shared expert router (").append(cfg.gateMode()).append(')');
                    case ZERO_BIAS -> sb.append("zeros");
                }
                stdout.println(sb.toString().strip());
            }
        }
        stdout.println("output tensors:      " + count + " (" + Sizes.human(bytes) + ")");
        stdout.println("config.json changes: " + String.join(", ", MoeConfigJson.changedKeys(l.base().config(),
                MoeConfigJson.of(l.arch(), l.base().config(), cfg.experts().size(), cfg.expertsPerToken(), cfg.sharedExperts().size(), l.outDType()))));
        stdout.println("workers:             " + lanes);
        stdout.println("memory budget:       " + Sizes.human(budget));
        stdout.println("output folder:       " + out);
        return 0;
    }

    private static long[] shape(MoeBuild.Layout l, MoeLayout.OutTensor t) {
        int e = l.config().experts().size();
        long h = l.base().config().path("hidden_size").asLong();
        switch (t.kind()) {
            case BASE: return l.base().tensor(t.baseSource()).info().shape();
            case ROUTER: return new long[] {e, h};
            case SHARED_ROUTER: return new long[] {l.config().sharedExperts().size(), h};
            case ZERO_BIAS: return new long[] {t.length()};
            default:
                MoeLayout.Piece p0 = t.pieces().get(0);
                ModelFolder f = l.experts().get(p0.expert());
                long[] s = f.tensor(p0.sourceName()) == null ? new long[] {0, 0} : f.tensor(p0.sourceName()).info().shape();
                if (t.pieces().size() == 1) return s;
                int experts = (int) t.pieces().stream().mapToInt(MoeLayout.Piece::expert).distinct().count();
                return new long[] {experts, s[0] * (t.pieces().size() / experts), s[1]};
        }
    }
}
