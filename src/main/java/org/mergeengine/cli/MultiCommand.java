package org.mergeengine.cli;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.mergeengine.api.MergeService;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.hub.HubSettings;
import org.mergeengine.multi.MultiConfig;
import org.mergeengine.multi.MultiRunner;
import org.mergeengine.plan.PlanOptions;
import org.mergeengine.plan.Planner;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code multi CONFIG.yaml --intermediate-dir DIR [--out-path OUT] [--force]}: a multi-stage file, stages run as a DAG. */
@Command(name = "multi", mixinStandardHelpOptions = true, description = "Runs a file of several merges, later ones using earlier ones by name.")
final class MultiCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "CONFIG", description = "YAML file of merge documents separated by ---")
    Path config;

    @Option(names = {"--intermediate-dir", "-I"}, required = true, paramLabel = "DIR", description = "where named merges are written (DIR/<name>)")
    Path intermediate;

    @Option(names = "--out-path", paramLabel = "OUT", description = "output of the unnamed (final) merge")
    Path outPath;

    @Option(names = "--force", description = "rerun every stage, even those that are up to date")
    boolean force;

    @Option(names = {"--workers", "-j"}, paramLabel = "N", description = "worker lanes (default: CPU count)")
    Integer workers;

    @Option(names = "--max-memory", paramLabel = "SIZE", description = "budget for tensor data in flight, shared by all stages")
    String maxMemory;

    @Option(names = "--out-shard-size", paramLabel = "SIZE")
    String outShardSize = "5B";

    @Option(names = "--random-seed", paramLabel = "N")
    long seed = PlanOptions.DEFAULT_SEED;

    @Option(names = "--allow-crimes")
    boolean allowCrimes;

    @Option(names = "--cache-dir", paramLabel = "DIR")
    Path cacheDir;

    @Option(names = "--offline")
    boolean offline;

    @Option(names = "--quiet")
    boolean quiet;

    private final PrintStream err;

    MultiCommand(PrintStream err) {
        this.err = err;
    }

    @Override
    public Integer call() {
        String text = ConfigParser.readText(config);
        MultiConfig multi;
        try {
            multi = MultiConfig.parse(text, intermediate.toAbsolutePath(), outPath == null ? null : outPath.toAbsolutePath());
            for (MultiConfig.Stage s : multi.stages()) Planner.checkConfig(s.config());
        } catch (ConfigException e) {
            throw new ConfigException(null, config.getFileName() + ": " + e.getMessage());
        }
        long budget = maxMemory == null ? MergeOptions.defaultBudget() : Sizes.parse(maxMemory);
        int lanes = workers != null ? workers : Runtime.getRuntime().availableProcessors();
        MergeOptions opts = new MergeOptions(lanes, budget, MergeOptions.DEFAULT_CHUNK, true, true, null);
        PlanOptions planOpts = new PlanOptions(seed, Sizes.parse(outShardSize), allowCrimes);
        List<Path> search = List.of(Path.of("").toAbsolutePath(), config.toAbsolutePath().getParent());
        try (MergeService svc = new MergeService(HubSettings.fromEnvironment(System.getenv(), cacheDir, offline))) {
            List<MultiRunner.StageResult> results;
            try {
                results = new MultiRunner(svc, multi, search, planOpts, opts, force, line -> {
                    if (!quiet) err.println(line);
                }).run().join();
            } catch (java.util.concurrent.CompletionException e) {
                if (e.getCause() instanceof RuntimeException re) throw re;
                throw e;
            }
            if (!quiet) {
                long ran = results.stream().filter(r -> r.state() == MultiRunner.State.DONE).count();
                err.println(String.format(Locale.ROOT, "%d stage(s): %d merged, %d up to date", results.size(), ran, results.size() - ran));
            }
        }
        return 0;
    }
}
