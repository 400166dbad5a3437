package org.mergeengine.cli;

import com.typesafe.config.ConfigFactory;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import org.mergeengine.MergeException;
import org.mergeengine.api.MergeService;
import org.mergeengine.cluster.MergeNode;
import org.mergeengine.cluster.Submission;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.config.MergeConfig;
import org.mergeengine.engine.Device;
import org.mergeengine.engine.MergeEngine;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.engine.OutputFolder;
import org.mergeengine.engine.Progress;
import org.mergeengine.hub.HubSettings;
import org.mergeengine.plan.LocalModelResolver;
import org.mergeengine.plan.MergePlan;
import org.mergeengine.plan.PlanOptions;
import org.mergeengine.plan.Planner;
import org.mergeengine.plan.UnreadParameters;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.HelpCommand;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.UnmatchedArgumentException;

/**
 * {@code merge-engine CONFIG [OUT_DIR] [options]} (a merge, as mergekit-yaml), or
 * {@code merge-engine COMMAND ...} for the subcommands registered in {@link #commandLine}.
 * Exit codes: 0 done, 2 bad config or input, 1 internal error.
 */
@Command(name = "merge-engine", mixinStandardHelpOptions = true, version = "merge-engine 0.1.0",
        description = "Merges language models as a mergekit YAML config describes (CONFIG [OUT_DIR]), or runs one of the commands below.",
        customSynopsis = {"merge-engine CONFIG [OUT_DIR] [options]", "       merge-engine COMMAND [options]  (COMMAND --help for its options)"}, commandListHeading = "%nCommands:%n",
        exitCodeOnInvalidInput = 2, exitCodeOnExecutionException = 1)
public final class Main implements Callable<Integer> {
    /** mergekit's other tools, which this engine does not build: named as such instead of read as a config. */
    private static final Set<String> MERGEKIT_TOOLS = Set.of("tokensurgeon", "evolve", "legacy", "layershuffle", "pytorch", "bakllama");

    @Parameters(index = "0", arity = "0..1", paramLabel = "CONFIG", description = "mergekit YAML config")
    Path config;

    @Parameters(index = "1", arity = "0..1", paramLabel = "OUT_DIR", description = "output folder (default: merged/<config name>)")
    Path out;

    @Mixin
    MergeFlags flags = new MergeFlags();

    @Option(names = "--dry-run", description = "print the plan (tensors, bytes, memory estimate) and write nothing")
    boolean dryRun;

    @Option(names = "--json", description = "print one JSON object on stdout at the end (output, tensors, bytes, seconds, peak memory, warnings), and for --dry-run the plan")
    boolean json;

    @Option(names = "--strict", description = "treat warnings (unread parameters, shapes cut, ...) as errors, before anything is written")
    boolean strict;

    @Option(names = "--cluster", paramLabel = "SEEDS", split = ",",
            description = "run the merge on a cluster: join through these seed nodes (pekko://merge-engine@host:port) and coordinate from here")
    List<String> cluster;

    @Option(names = "--cluster-host", paramLabel = "HOST", description = "address the cluster reaches this process at (default: 127.0.0.1 for a local seed, else this host's address)")
    String clusterHost;

    @Spec
    CommandSpec spec;

    private final PrintStream stdout;
    private final PrintStream stderr;
    private final Set<String> warnings = new LinkedHashSet<>();
    /** When the command started: the closing line's "in all" and --json's seconds count from here. */
    private final long started = System.nanoTime();
    private EarlyEngine early;

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
        Main main = new Main(stdout, stderr);
        String first = args.length > 0 ? args[0] : "";
        boolean command = SUBCOMMANDS.containsKey(first);
        if (!first.startsWith("-") && !command && looksLikeCommand(first)) {
            return unknownCommand(commandLine(main, stdout, stderr), first, stderr);
        }
        // The actor system starts first, so that it comes up on the other core while picocli reads
        // the command's annotations and the config is planned (about 0.2 s each on two cores).
        if (!command) main.early = EarlyEngine.forArgs(List.of(args));
        try {
            CommandLine cl = commandLine(main, stdout, stderr, needsEveryCommand(args) ? SUBCOMMANDS.keySet() : command ? Set.of(first) : Set.of());
            return cl.execute(args);
        } finally {
            if (main.early != null) main.early.closeUnlessTaken();
        }
    }

    /** How a subcommand is made, given stdout and stderr. */
    private interface Make {
        Object command(PrintStream stdout, PrintStream stderr);
    }

    /** The subcommands by name, in the order help lists them: a new command is one line here. */
    private static final Map<String, Make> SUBCOMMANDS = new LinkedHashMap<>();

    static {
        SUBCOMMANDS.put("multi", MultiCommand::new);
        SUBCOMMANDS.put("eval", EvalCommand::new);
        SUBCOMMANDS.put("moe", MoeCommand::new);
        SUBCOMMANDS.put("extract-lora", (out, err) -> new ExtractLoraCommand(err));
        SUBCOMMANDS.put("node", (out, err) -> new NodeCommand(out));
        SUBCOMMANDS.put("cache", (out, err) -> new CacheCommand(out));
        SUBCOMMANDS.put("bench", BenchCommand::new);
        SUBCOMMANDS.put("warm-up", (out, err) -> new WarmUpCommand());
        SUBCOMMANDS.put("help", (out, err) -> new HelpCommand());
    }

    /** Whether the arguments ask for help that lists the commands (or give nothing to run). */
    private static boolean needsEveryCommand(String[] args) {
        if (args.length == 0 || args[0].equals("help")) return true;
        for (String a : args) if (a.equals("-h") || a.equals("--help") || a.equals("-?")) return !SUBCOMMANDS.containsKey(args[0]);
        return false;
    }

    /** The command line with every subcommand. */
    static CommandLine commandLine(Main main, PrintStream stdout, PrintStream stderr) {
        return commandLine(main, stdout, stderr, SUBCOMMANDS.keySet());
    }

    /**
     * The command line with the named subcommands only. Picocli reads every option of every
     * command it is given by reflection when it is built, which took about a fifth of a second
     * of each start once the commands had grown; a merge needs none of them, a command itself.
     */
    static CommandLine commandLine(Main main, PrintStream stdout, PrintStream stderr, Set<String> commands) {
        CommandLine cl = new CommandLine(main);
        for (Map.Entry<String, Make> c : SUBCOMMANDS.entrySet()) {
            if (commands.contains(c.getKey())) cl.addSubcommand(c.getKey(), c.getValue().command(stdout, stderr));
        }
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        cl.setOut(new PrintWriter(stdout, true));
        cl.setErr(new PrintWriter(stderr, true));
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            Throwable t = MergeException.unwrap(ex);
            if (t instanceof MergeException me && me.kind() == MergeException.Kind.USER) {
                stderr.println("error: " + me.getMessage());
                return 2;
            }
            stderr.println("error: internal error: " + t);
            t.printStackTrace(stderr);
            return 1;
        });
        // As click does for mergekit's options: a repeated option takes its last value (--cuda ... --no-cuda).
        cl.setOverwrittenOptionsAllowed(true);
        cl.setParameterExceptionHandler((ex, a) -> {
            stderr.println("error: " + ex.getMessage());
            PrintWriter w = new PrintWriter(stderr, true);
            UnmatchedArgumentException.printSuggestions(ex, w);
            CommandLine c = ex.getCommandLine();
            w.println("(" + c.getCommandSpec().qualifiedName() + " --help lists the options)");
            return 2;
        });
        return cl;
    }

    /** A bare word that names no file: meant as a command, not as a config. */
    private static boolean looksLikeCommand(String arg) {
        return arg.matches("[A-Za-z][A-Za-z0-9_-]*") && !Files.exists(Path.of(arg));
    }

    private static int unknownCommand(CommandLine cl, String name, PrintStream stderr) {
        String tool = name.startsWith("mergekit-") ? name.substring("mergekit-".length()) : name;
        String why = MERGEKIT_TOOLS.contains(tool) ? ": mergekit-" + tool + " is not built into merge-engine" : " (and no config file of that name)";
        stderr.println("error: unknown command '" + name + "'" + why);
        stderr.print("Commands:\n" + cl.getHelp().commandList());
        stderr.println("A merge runs as: merge-engine CONFIG [OUT_DIR] [options] (--help for the options)");
        return 2;
    }

    /** The result of a future, with the failure inside the futures' wrappers rethrown as it was. */
    static <T> T await(CompletableFuture<T> f) {
        try {
            return f.join();
        } catch (CompletionException e) {
            Throwable c = MergeException.unwrap(e);
            if (c instanceof RuntimeException re) throw re;
            if (c instanceof Error err) throw err;
            throw new MergeException(MergeException.Kind.INTERNAL, String.valueOf(c), c);
        }
    }

    @Override
    public Integer call() {
        if (config == null) {
            stderr.println("error: give a CONFIG to merge, or a command");
            spec.commandLine().usage(new PrintWriter(stderr, true));
            return 2;
        }
        flags.printNotes(stderr);
        HubSettings hub = flags.hub();
        PlanOptions planOpts = flags.planOptions();
        MergeOptions opts = flags.mergeOptions();
        if (cluster != null && !cluster.isEmpty()) {
            flags.setLogLevel();
            return clusterRun(hub, planOpts, opts);
        }
        MergeConfig cfg = ConfigParser.parseFile(config);
        Planner.checkConfig(cfg);
        warn(UnreadParameters.check(cfg));
        List<Path> search = searchDirs();
        try (LocalModelResolver paths = new LocalModelResolver(search)) {
            paths.checkPaths(cfg);
        }
        boolean local = MergeService.allLocal(cfg, search);
        // The actor system takes most of a second to start on a small machine: it starts while the
        // options and the config are read (EarlyEngine), else here, while the merge is planned.
        // A dry run of local models needs no actors.
        CompletableFuture<MergeService> starting = dryRun && local ? null
                : early != null ? early.take().thenApply(e -> serviceOn(e, hub))
                : CompletableFuture.supplyAsync(() -> new MergeService(hub));
        flags.setLogLevel();
        try {
            return plannedRun(starting, cfg, search, local, planOpts, opts);
        } finally {
            if (starting != null) starting.thenAccept(MergeService::close).exceptionally(e -> null).join();
        }
    }

    private List<Path> searchDirs() {
        return List.of(Path.of("").toAbsolutePath(), config.toAbsolutePath().getParent());
    }

    private Path outDir() {
        return out != null ? out : Path.of("merged", stem(config));
    }

    /** Prints warnings once each and keeps them for --json and --strict. */
    private void warn(List<String> ws) {
        for (String w : ws) if (warnings.add(w)) stderr.println("warning: " + w);
    }

    private void failIfStrict() {
        if (strict && !warnings.isEmpty()) {
            throw MergeException.user("--strict: " + warnings.size() + " warning(s) above; nothing was written");
        }
    }

    /** A service on an engine started early; the engine is closed if the service cannot be built around it. */
    private static MergeService serviceOn(MergeEngine engine, HubSettings hub) {
        try {
            return new MergeService(engine, hub);
        } catch (RuntimeException | Error e) {
            engine.close();
            throw e;
        }
    }

    /**
     * Plans, then merges. Models that are all local folders are planned once, on their files, while
     * the actor system starts; a config naming hub models is first checked from headers alone (so
     * no weight is downloaded for a config with a mistake), then planned again on the downloaded files.
     */
    private int plannedRun(CompletableFuture<MergeService> starting, MergeConfig cfg, List<Path> search, boolean local,
                           PlanOptions planOpts, MergeOptions opts) {
        Path outDir = outDir();
        if (!dryRun) OutputFolder.check(outDir);
        LocalModelResolver resolver = local ? new LocalModelResolver(search) : null;
        try {
            failIfStrict();
            MergePlan plan = local ? Planner.plan(cfg, resolver, planOpts) : await(starting).check(cfg, search, planOpts);
            if (flags.verbosity() > 0) for (String n : plan.notes()) stderr.println("note: " + n);
            warn(plan.warnings());
            failIfStrict();
            Report report = new Report(stdout, stderr, flags.verbosity());
            if (dryRun) {
                if (json) report.planJson(plan, opts, outDir, List.copyOf(warnings));
                else report.plan(plan, opts, outDir);
                return 0;
            }
            List<Device> devices = flags.devices(stderr);
            if (devices != null) opts = opts.withDevices(devices);
            if (!flags.quiet) opts = opts.withProgress(new ProgressPrinter(stderr, System.console() != null));
            MergeService service = await(starting);
            Progress p = local ? service.engine().run(plan, outDir, opts) : await(service.merge(cfg, search, outDir, planOpts, opts));
            finished(report, p, outDir, opts.lanes().size());
            return 0;
        } finally {
            if (resolver != null) resolver.close();
        }
    }

    /** What a finished merge prints, local or on a cluster. */
    private void finished(Report report, Progress p, Path outDir, int lanes) {
        double secs = (System.nanoTime() - started) / 1e9;
        if (p.resumedParts() > 0) stderr.println("resumed an interrupted run: " + p.resumedParts() + " finished part(s) were verified and kept");
        if (!flags.quiet) report.merged(p, outDir, secs, lanes);
        if (json) report.mergedJson(p, outDir, secs, List.copyOf(warnings));
    }

    /** Joins the cluster as a node, coordinates the merge from here and leaves when it is done. */
    private int clusterRun(HubSettings hub, PlanOptions planOpts, MergeOptions opts) {
        if (dryRun) throw MergeException.user("--dry-run plans locally; run it without --cluster");
        String text = ConfigParser.readText(config);
        warn(UnreadParameters.check(ConfigParser.parseFile(config)));
        failIfStrict();
        Path outDir = outDir().toAbsolutePath();
        List<Device> devices = new ArrayList<>();
        for (int i = 0; i < opts.workers(); i++) devices.add(Device.cpu(i));
        String host = clusterHost != null ? clusterHost : localHostFor(cluster.get(0));
        MergeNode.Settings settings = new MergeNode.Settings(host, 0, cluster, devices, opts.maxMemoryBytes(), hub, 1, ConfigFactory.empty());
        MergeNode.Request request = new MergeNode.Request(text, searchDirs(), outDir, planOpts, opts.chunkElements(), opts.copyTokenizer(),
                opts.writeModelCard());
        try (MergeNode node = MergeNode.start(settings)) {
            if (!flags.quiet) stderr.println("joined the cluster as " + node.address() + " (" + node.members().size() + " members)");
            Submission s = node.submit(request);
            if (!flags.quiet) s.onProgress(new ProgressPrinter(stderr, System.console() != null));
            Progress p = await(s.result());
            finished(new Report(stdout, stderr, flags.verbosity()), p, outDir, p.tasksByLane().size());
            return 0;
        }
    }

    static String localHostFor(String seed) {
        String s = seed.contains("@") ? seed.substring(seed.indexOf('@') + 1) : seed;
        String h = s.contains(":") ? s.substring(0, s.lastIndexOf(':')) : s;
        if (h.equals("127.0.0.1") || h.equals("localhost")) return "127.0.0.1";
        try {
            return InetAddress.getLocalHost().getHostAddress();
        } catch (UnknownHostException e) {
            return "127.0.0.1";
        }
    }

    static String stem(Path p) {
        String n = p.getFileName().toString();
        int dot = n.lastIndexOf('.');
        return dot > 0 ? n.substring(0, dot) : n;
    }
}
