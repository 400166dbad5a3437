package org.mergeengine.cli;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.mergeengine.MergeException;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.config.MergeConfig;
import org.mergeengine.api.MergeService;
import org.mergeengine.hub.HubSettings;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.engine.OutputFolder;
import org.mergeengine.engine.Progress;
import org.mergeengine.plan.MergePlan;
import org.mergeengine.plan.PlanOptions;
import org.mergeengine.plan.PlannedTensor;
import org.mergeengine.plan.Planner;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code java -jar merge-engine.jar CONFIG [OUT_DIR] [options]}, or {@code extract-lora ...}.
 * Exit codes: 0 done, 2 bad config or input, 1 internal error.
 */
@Command(name = "merge-engine", mixinStandardHelpOptions = true, version = "merge-engine 0.1.0",
        description = "Merges language models as a mergekit YAML config describes.",
        exitCodeOnInvalidInput = 2, exitCodeOnExecutionException = 1)
public final class Main implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "CONFIG", description = "mergekit YAML config")
    Path config;

    @Parameters(index = "1", arity = "0..1", paramLabel = "OUT_DIR", description = "output folder (default: merged/<config name>)")
    Path out;

    @Option(names = "--out-shard-size", paramLabel = "SIZE", description = "bytes per output shard, e.g. 5B, 500M (default 5B)")
    String outShardSize = "5B";

    @Option(names = "--copy-tokenizer", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "copy the tokenizer files of the base (else first) model (default on)")
    boolean copyTokenizer = true;

    @Option(names = "--write-model-card", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "write README.md and mergekit_config.yml (default on)")
    boolean writeModelCard = true;

    @Option(names = "--allow-crimes", description = "allow merging models of different architectures")
    boolean allowCrimes;

    @Option(names = "--fail-on-nonfinite", description = "stop with an error when an input tensor holds NaN or infinite values (default: a warning naming the model and tensor)")
    boolean failOnNonFinite;

    @Option(names = "--max-memory", paramLabel = "SIZE", description = "budget for tensor data in flight (default: half the JVM heap)")
    String maxMemory;

    @Option(names = {"--workers", "-j"}, paramLabel = "N", description = "worker lanes (default: number of CPUs)")
    Integer workers;

    @Option(names = {"--multigpu", "--multi-gpu"}, description = "one worker per device (CPU lanes on machines without a GPU backend)")
    boolean multigpu;

    @Option(names = "--backend", paramLabel = "NAME", description = "java (default) or djl: compute linear, task_arithmetic and slerp with PyTorch through DJL")
    String backend = "java";

    @Option(names = "--cuda", description = "run the DJL backend on CUDA devices (one GPU; all of them with --multigpu); implies --backend djl")
    boolean cuda;

    @Option(names = "--dry-run", description = "print the plan (tensors, bytes, memory estimate) and write nothing")
    boolean dryRun;

    @Option(names = "--random-seed", paramLabel = "N", description = "seed of the random methods (default 42)")
    long seed = PlanOptions.DEFAULT_SEED;

    @Option(names = "--chunk-elements", paramLabel = "N", hidden = true, description = "elements per streamed chunk")
    int chunkElements = MergeOptions.DEFAULT_CHUNK;

    @Option(names = "--cache-dir", paramLabel = "DIR", description = "hub cache folder (default: HF_HUB_CACHE, else HF_HOME/hub)")
    Path cacheDir;

    @Option(names = "--offline", description = "use the hub cache only, no network (also HF_HUB_OFFLINE=1)")
    boolean offline;

    @Option(names = "--mmap", description = "read inputs through memory-mapped windows instead of positional reads")
    boolean mmap;

    @Option(names = "--cluster", paramLabel = "SEEDS", split = ",",
            description = "run the merge on a cluster: join through these seed nodes (pekko://merge-engine@host:port) and coordinate from here")
    List<String> cluster;

    @Option(names = "--cluster-host", paramLabel = "HOST", description = "address the cluster reaches this process at (default: 127.0.0.1 for a local seed, else this host's address)")
    String clusterHost;

    @Option(names = "-v", description = "more output (repeat for more)")
    boolean[] verbose = new boolean[0];

    @Option(names = "--quiet", description = "no progress output")
    boolean quiet;

    private final PrintStream stdout;
    private final PrintStream stderr;

    public Main(PrintStream stdout, PrintStream stderr) {
        this.stdout = stdout;
        this.stderr = stderr;
    }

    public static void main(String[] args) {
        // Pekko logs while logback starts; SLF4J would otherwise tell the user it replayed those calls.
        if (System.getProperty("slf4j.internal.verbosity") == null) System.setProperty("slf4j.internal.verbosity", "ERROR");
        System.exit(run(args, System.out, System.err));
    }

    /** Runs the CLI and returns its exit code (tests call this instead of main). */
    public static int run(String[] args, PrintStream stdout, PrintStream stderr) {
        String sub = args.length > 0 ? args[0] : "";
        Object command = sub.equals("extract-lora") ? new ExtractLoraCommand(stderr)
                : sub.equals("bench") ? new BenchCommand(stdout, stderr)
                : sub.equals("cache") ? new CacheCommand(stdout)
                : sub.equals("multi") ? new MultiCommand(stderr)
                : sub.equals("node") ? new NodeCommand(stdout)
                : sub.equals("warm-up") ? new WarmUpCommand() : new Main(stdout, stderr);
        if (!(command instanceof Main)) args = java.util.Arrays.copyOfRange(args, 1, args.length);
        EarlyEngine early = command instanceof Main m ? (m.early = EarlyEngine.forArgs(List.of(args))) : null;
        try {
            return execute(command, args, stdout, stderr);
        } finally {
            if (early != null) early.closeUnlessTaken();
        }
    }

    private EarlyEngine early;

    private static int execute(Object command, String[] args, PrintStream stdout, PrintStream stderr) {
        CommandLine cl = new CommandLine(command);
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        cl.setOut(new java.io.PrintWriter(stdout, true));
        cl.setErr(new java.io.PrintWriter(stderr, true));
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            if (ex instanceof MergeException me && me.kind() == MergeException.Kind.USER) {
                stderr.println("error: " + me.getMessage());
                return 2;
            }
            stderr.println("internal error: " + ex);
            ex.printStackTrace(stderr);
            return 1;
        });
        cl.setParameterExceptionHandler((ex, a) -> {
            stderr.println("error: " + ex.getMessage());
            ex.getCommandLine().usage(new java.io.PrintWriter(stderr, true));
            return 2;
        });
        return cl.execute(args);
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
        if (chunkElements < 1024) throw MergeException.user("--chunk-elements must be at least 1024");

        if (mmap) System.setProperty(org.mergeengine.formats.SafetensorsFile.MMAP_PROPERTY, "true");
        HubSettings hub = HubSettings.fromEnvironment(System.getenv(), cacheDir, offline);
        if (cluster != null && !cluster.isEmpty()) {
            setLogLevel();
            return clusterRun(hub, shard, budget);
        }
        MergeConfig cfg = ConfigParser.parseFile(config);
        Planner.checkConfig(cfg);
        List<Path> search = List.of(Path.of("").toAbsolutePath(), config.toAbsolutePath().getParent());
        boolean local = MergeService.allLocal(cfg, search);
        // The actor system takes most of a second to start on a small machine: it starts while the
        // options and the config are read (EarlyEngine), else here, while the merge is planned.
        // A dry run of local models needs no actors.
        java.util.concurrent.CompletableFuture<MergeService> starting = dryRun && local ? null
                : early != null ? early.take().thenApply(e -> serviceOn(e, hub))
                : java.util.concurrent.CompletableFuture.supplyAsync(() -> new MergeService(hub));
        setLogLevel();
        try {
            return plannedRun(starting, cfg, search, local, shard, budget);
        } finally {
            if (starting != null) starting.thenAccept(MergeService::close).exceptionally(e -> null).join();
        }
    }

    /** A service on an engine started early; the engine is closed if the service cannot be built around it. */
    private static MergeService serviceOn(org.mergeengine.engine.MergeEngine engine, HubSettings hub) {
        try {
            return new MergeService(engine, hub);
        } catch (RuntimeException | Error e) {
            engine.close();
            throw e;
        }
    }

    private void setLogLevel() {
        String level = quiet ? "ERROR" : verbose.length == 0 ? "WARN" : verbose.length == 1 ? "INFO" : "DEBUG";
        ((ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME))
                .setLevel(ch.qos.logback.classic.Level.toLevel(level));
    }

    /**
     * Plans, then merges. Models that are all local folders are planned once, on their files, while
     * the actor system starts; a config naming hub models is first checked from headers alone (so
     * no weight is downloaded for a config with a mistake), then planned again on the downloaded files.
     */
    private int plannedRun(java.util.concurrent.CompletableFuture<MergeService> starting, MergeConfig cfg, List<Path> search, boolean local,
                           long shard, long budget) {
        Path outDir = out != null ? out : Path.of("merged", stem(config));
        if (!dryRun) OutputFolder.check(outDir);
        int lanes = workers != null ? workers : Runtime.getRuntime().availableProcessors();
        MergeOptions opts = new MergeOptions(lanes, budget, chunkElements, copyTokenizer, writeModelCard, null).withFailOnNonFinite(failOnNonFinite);
        if (!dryRun) {
            List<org.mergeengine.engine.Device> devices = devices(lanes);
            if (devices != null) opts = opts.withDevices(devices);
        }
        PlanOptions planOpts = new PlanOptions(seed, shard, allowCrimes);
        long t0 = System.nanoTime();
        org.mergeengine.plan.LocalModelResolver resolver = local ? new org.mergeengine.plan.LocalModelResolver(search) : null;
        try {
            MergePlan plan = local ? Planner.plan(cfg, resolver, planOpts) : starting.join().check(cfg, search, planOpts);
            for (String w : plan.warnings()) {
                if (verbose.length > 0 || !w.startsWith("base model")) stderr.println("warning: " + w);
            }
            if (dryRun) {
                printPlan(plan, opts, outDir);
                return 0;
            }
            boolean terminal = System.console() != null;
            if (!quiet) opts = opts.withProgress(new ProgressPrinter(stderr, terminal));
            MergeService service = starting.join();
            Progress p;
            if (local) {
                p = service.engine().run(plan, outDir, opts);
            } else {
                try {
                    p = service.merge(cfg, search, outDir, planOpts, opts).join();
                } catch (java.util.concurrent.CompletionException e) {
                    Throwable c = e.getCause();
                    if (c instanceof RuntimeException re) throw re;
                    throw e;
                }
            }
            double secs = (System.nanoTime() - t0) / 1e9;
            if (p.resumedParts() > 0) stderr.println("resumed an interrupted run: " + p.resumedParts() + " finished part(s) were verified and kept");
            if (!quiet) {
                stderr.println(String.format(Locale.ROOT, "merged %d tensors (%s read, %s written) in %.2fs into %s",
                        p.tensorsTotal(), Sizes.human(plan.inputBytes()), Sizes.human(plan.outputBytes()), secs, outDir));
            }
            return 0;
        } finally {
            if (resolver != null) resolver.close();
        }
    }

    /** The lanes' devices for --backend/--cuda/--multigpu, or null for plain CPU lanes. */
    private List<org.mergeengine.engine.Device> devices(int lanes) {
        boolean djl = cuda || backend.equalsIgnoreCase("djl");
        if (!djl && !backend.equalsIgnoreCase("java")) throw MergeException.user("--backend must be java or djl, not '" + backend + "'");
        if (cuda) return org.mergeengine.djl.DjlDevice.cuda(multigpu ? 0 : 1);
        if (multigpu && workers == null) {
            stderr.println("note: --multigpu without --cuda runs one worker per CPU lane (" + lanes + ")");
        }
        return djl ? org.mergeengine.djl.DjlDevice.cpu(lanes) : null;
    }

    /** Joins the cluster as a node, coordinates the merge from here and leaves when it is done. */
    private int clusterRun(HubSettings hub, long shard, long budget) {
        if (dryRun) throw MergeException.user("--dry-run plans locally; run it without --cluster");
        String text = ConfigParser.readText(config);
        Path outDir = (out != null ? out : Path.of("merged", stem(config))).toAbsolutePath();
        int lanes = workers != null ? workers : Runtime.getRuntime().availableProcessors();
        java.util.List<org.mergeengine.engine.Device> devices = new java.util.ArrayList<>();
        for (int i = 0; i < lanes; i++) devices.add(org.mergeengine.engine.Device.cpu(i));
        String host = clusterHost != null ? clusterHost : localHostFor(cluster.get(0));
        org.mergeengine.cluster.MergeNode.Settings settings = new org.mergeengine.cluster.MergeNode.Settings(host, 0, cluster, devices, budget, hub, 1,
                com.typesafe.config.ConfigFactory.empty());
        List<Path> search = List.of(Path.of("").toAbsolutePath(), config.toAbsolutePath().getParent());
        org.mergeengine.cluster.MergeNode.Request request = new org.mergeengine.cluster.MergeNode.Request(text, search, outDir,
                new PlanOptions(seed, shard, allowCrimes), chunkElements, copyTokenizer, writeModelCard);
        try (org.mergeengine.cluster.MergeNode node = org.mergeengine.cluster.MergeNode.start(settings)) {
            if (!quiet) stderr.println("joined the cluster as " + node.address() + " (" + node.members().size() + " members)");
            long t0 = System.nanoTime();
            org.mergeengine.cluster.Submission s = node.submit(request);
            if (!quiet) s.onProgress(new ProgressPrinter(stderr, System.console() != null));
            Progress p;
            try {
                p = s.result().join();
            } catch (java.util.concurrent.CompletionException e) {
                if (e.getCause() instanceof RuntimeException re) throw re;
                throw e;
            }
            if (p.resumedParts() > 0) stderr.println("resumed an interrupted run: " + p.resumedParts() + " finished part(s) were verified and kept");
            if (!quiet) {
                stderr.println(String.format(Locale.ROOT, "merged %d tensors on %d lane(s) in %.2fs into %s", p.tensorsTotal(), p.tasksByLane().size(),
                        (System.nanoTime() - t0) / 1e9, outDir));
            }
            return 0;
        }
    }

    static String localHostFor(String seed) {
        String s = seed.contains("@") ? seed.substring(seed.indexOf('@') + 1) : seed;
        String h = s.contains(":") ? s.substring(0, s.lastIndexOf(':')) : s;
        if (h.equals("127.0.0.1") || h.equals("localhost")) return "127.0.0.1";
        try {
            return java.net.InetAddress.getLocalHost().getHostAddress();
        } catch (java.net.UnknownHostException e) {
            return "127.0.0.1";
        }
    }

    private void printPlan(MergePlan plan, MergeOptions opts, Path outDir) {
        PlannedTensor largest = plan.largest();
        long largestBytes = largest == null ? 0 : largest.numel() * 4L * (2L * largest.inputs().size() + 2);
        stdout.println("merge method:    " + plan.method().name());
        stdout.println("models:          " + String.join(", ", plan.models().keySet()));
        stdout.println("output tensors:  " + plan.tensors().size() + " in " + plan.layout().shards().size() + " shard(s), "
                + plan.outputLayers() + " layers");
        stdout.println("input bytes:     " + Sizes.human(plan.inputBytes()));
        stdout.println("output bytes:    " + Sizes.human(plan.outputBytes()));
        stdout.println("workers:         " + opts.workers());
        stdout.println("memory budget:   " + Sizes.human(opts.maxMemoryBytes()));
        stdout.println("peak memory est: " + Sizes.human(Math.min(opts.maxMemoryBytes(), opts.workers() * (long) opts.chunkElements() * 4 * 16)
                + (largest == null ? 0 : Math.min(largestBytes, (long) opts.chunkElements() * 4 * (2L * largest.inputs().size() + 2) * 3)))
                + " (budget in flight plus the largest task)");
        stdout.println("output folder:   " + outDir);
        for (Path stale : OutputFolder.staleTemporaries(outDir, OutputFolder.tempPath(outDir, OutputFolder.planHash(plan)))) {
            stdout.println("stale temporary: " + stale + " (left by an interrupted run of another plan; a run into this folder removes it)");
        }
        if (verbose.length > 0) {
            for (PlannedTensor t : plan.tensors()) {
                StringBuilder sb = new StringBuilder("  ").append(t.name()).append(' ').append(java.util.Arrays.toString(t.shape()))
                        .append(' ').append(t.outDType().safetensorsName()).append(" <-");
                for (PlannedTensor.Input i : t.inputs()) sb.append(' ').append(i.model()).append(':').append(i.source().info().name());
                stdout.println(sb);
            }
        }
    }

    static String stem(Path p) {
        String n = p.getFileName().toString();
        int dot = n.lastIndexOf('.');
        return dot > 0 ? n.substring(0, dot) : n;
    }
}
