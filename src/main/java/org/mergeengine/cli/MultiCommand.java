package org.mergeengine.cli;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.mergeengine.MergeException;
import org.mergeengine.api.MergeService;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.engine.Device;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.hub.HubSettings;
import org.mergeengine.multi.MultiConfig;
import org.mergeengine.multi.MultiRunner;
import org.mergeengine.plan.LocalModelResolver;
import org.mergeengine.plan.MergePlan;
import org.mergeengine.plan.PlanOptions;
import org.mergeengine.plan.Planner;
import org.mergeengine.plan.UnreadParameters;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code multi CONFIG.yaml --intermediate-dir DIR [--out-path OUT] [--no-lazy] [merge options]}: a multi-stage file, stages run as a DAG. */
@Command(name = "multi", mixinStandardHelpOptions = true, abbreviateSynopsis = true, description = "Runs a file of several merges, later ones using earlier ones by name (mergekit-multi).")
final class MultiCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "CONFIG", description = "YAML file of merge documents separated by ---")
    Path config;

    @Option(names = {"--intermediate-dir", "-I"}, required = true, paramLabel = "DIR", description = "where named merges are written (DIR/<name>)")
    Path intermediate;

    @Option(names = "--out-path", paramLabel = "OUT", description = "output of the unnamed (final) merge")
    Path outPath;

    @Option(names = "--lazy", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "skip stages whose output is up to date (default on); --no-lazy reruns every stage")
    boolean lazy = true;

    @Option(names = "--force", description = "rerun every stage, even those that are up to date (as --no-lazy)")
    boolean force;

    @Option(names = "--dry-run", description = "list the stages in the order they run, plan those whose inputs exist, and write nothing")
    boolean dryRun;

    @Option(names = "--strict", description = "treat warnings (unread parameters) as errors, before anything is written")
    boolean strict;

    @Mixin
    MergeFlags flags = new MergeFlags();

    private final PrintStream out;
    private final PrintStream err;

    MultiCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    @Override
    public Integer call() {
        flags.printNotes(err);
        String text = ConfigParser.readText(config);
        MultiConfig multi;
        try {
            multi = MultiConfig.parse(text, intermediate.toAbsolutePath(), outPath == null ? null : outPath.toAbsolutePath());
            for (MultiConfig.Stage s : multi.stages()) Planner.checkConfig(s.config());
        } catch (ConfigException e) {
            throw new ConfigException(null, config.getFileName() + ": " + e.getMessage());
        }
        int warnings = 0;
        for (MultiConfig.Stage s : multi.stages()) {
            for (String w : UnreadParameters.check(s.config())) {
                err.println("warning: " + s.label() + ": " + w);
                warnings++;
            }
        }
        if (strict && warnings > 0) throw MergeException.user("--strict: " + warnings + " warning(s) above; nothing was written");
        MergeOptions opts = flags.mergeOptions();
        PlanOptions planOpts = flags.planOptions();
        HubSettings hub = flags.hub();
        List<Path> search = List.of(Path.of("").toAbsolutePath(), config.toAbsolutePath().getParent());
        flags.setLogLevel();
        if (dryRun) return dryRun(multi, search, planOpts, opts, hub);
        List<Device> devices = flags.devices(err);
        if (devices != null) opts = opts.withDevices(devices);
        try (MergeService svc = new MergeService(hub)) {
            List<MultiRunner.StageResult> results = Main.await(new MultiRunner(svc, multi, search, planOpts, opts, force || !lazy, line -> {
                if (!flags.quiet) err.println(line);
            }).run());
            if (!flags.quiet) {
                long ran = results.stream().filter(r -> r.state() == MultiRunner.State.DONE).count();
                err.println(String.format(Locale.ROOT, "%d stage(s): %d merged, %d up to date", results.size(), ran, results.size() - ran));
            }
        }
        return 0;
    }

    /** Each stage in file order; a stage that uses no other stage is planned on its inputs (local folders, or hub headers). */
    private int dryRun(MultiConfig multi, List<Path> search, PlanOptions planOpts, MergeOptions opts, HubSettings hub) {
        MergeService svc = null;
        try {
            for (MultiConfig.Stage s : multi.stages()) {
                String head = s.label() + ": " + s.config().mergeMethod() + " -> " + s.output();
                if (!s.dependsOn().isEmpty()) {
                    out.println(head + " (uses " + String.join(", ", s.dependsOn()) + "; planned once those are merged)");
                    continue;
                }
                MergePlan plan;
                if (MergeService.allLocal(s.config(), search)) {
                    try (LocalModelResolver r = new LocalModelResolver(search)) {
                        plan = Planner.plan(s.config(), r, planOpts);
                    }
                } else {
                    if (svc == null) svc = new MergeService(hub);
                    plan = svc.check(s.config(), search, planOpts);
                }
                for (String w : plan.warnings()) err.println("warning: " + s.label() + ": " + w);
                out.println(head + String.format(Locale.ROOT, " (%d tensors, %s read, %s written, peak memory est %s)", plan.tensors().size(),
                        Sizes.human(plan.inputBytes()), Sizes.human(plan.outputBytes()), Sizes.human(Report.peakEstimate(plan, opts))));
            }
        } finally {
            if (svc != null) svc.close();
        }
        return 0;
    }
}
