package org.mergeengine.cli;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.mergeengine.MergeException;
import org.mergeengine.bench.Bench;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.ShardLayout;
import org.mergeengine.tools.SyntheticModel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code bench}: merges of synthetic models timed against the read+write ceiling of the same files (benchmarks/run calls it). */
@Command(name = "bench", mixinStandardHelpOptions = true, description = "Benchmarks merges against the time of reading their inputs and writing their output once.")
final class BenchCommand implements Callable<Integer> {
    @Option(names = "--size", paramLabel = "SIZE", description = "bytes per synthetic bf16 model (default 1.5G)")
    String size = "1.5G";

    @Option(names = "--methods", split = ",", description = "methods to run (default linear,task_arithmetic,ties,dare_ties,slerp,model_stock)")
    List<String> methods = new ArrayList<>(List.of("linear", "task_arithmetic", "ties", "dare_ties", "slerp", "model_stock"));

    @Option(names = "--workers", split = ",", description = "worker counts to run (default 1,<CPUs>)")
    List<Integer> workers;

    @Option(names = "--cold", negatable = true, defaultValue = "true", fallbackValue = "true", description = "also run with the inputs evicted from the page cache")
    boolean cold = true;

    @Option(names = "--xmx", description = "heap of each merge (default 1g)")
    String xmx = "1g";

    @Option(names = "--work", description = "where models and scratch files go (default benchmarks/data)")
    Path work = Path.of("benchmarks/data");

    @Option(names = "--results", description = "where bench.json and bench.svg go (default benchmarks/results)")
    Path results = Path.of("benchmarks/results");

    @Option(names = "--baseline", description = "stored ratios to compare with (default benchmarks/baseline.json)")
    Path baseline = Path.of("benchmarks/baseline.json");

    @Option(names = "--update-baseline", description = "store this run's ratios as the baseline")
    boolean updateBaseline;

    @Option(names = "--mmap", description = "merges read inputs through mmap instead of positional reads")
    boolean mmap;

    @Option(names = "--against", paramLabel = "JAR", description = "an earlier build's jar: each merge also runs with it, right after, and a merge more than 15%% slower than it fails the run (instead of the baseline)")
    Path against;

    @Option(names = "--repeat", paramLabel = "N", description = "run each merge N times (alternating with --against's) and keep the fastest (default 1)")
    int repeat = 1;

    @Option(names = "--cds", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "merges start as the launcher target/merge-engine starts them: from a class-data archive of the jar, with its JIT thresholds (default on)")
    boolean cds = true;

    @Option(names = "--native", paramLabel = "SCRIPT", description = "the native yardstick native-linear (default: ../shared/bench/native-linear when it is there); every merge's time is also given as a multiple of its linear merge on the same files")
    Path nativeLinear;

    @Option(names = "--no-native", description = "run without the native yardstick")
    boolean noNative;

    private final PrintStream out;
    private final PrintStream err;

    BenchCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    /**
     * The size the synthetic models will have: the one asked for, which the layer count meets
     * within a tenth; else (below one layer of the smallest shape) the size of the model that is
     * generated, said on stderr, so that bench.json records what was merged.
     */
    static long modelBytes(long requested, PrintStream err) {
        SyntheticModel.Spec spec = SyntheticModel.Spec.ofSize(requested);
        long actual = 0;
        for (ShardLayout.Entry e : spec.tensors(DType.BF16)) actual += e.byteSize();
        if (Math.abs(actual - requested) <= requested / 10) return requested;
        err.println(String.format(Locale.ROOT, "note: --size %s: the closest synthetic model (hidden %d, vocab %d, %d layer(s); one layer is the smallest) is %s; using that",
                Sizes.human(requested), spec.hidden(), spec.vocab(), spec.layers(), Sizes.human(actual)));
        return actual;
    }

    @Override
    public Integer call() throws Exception {
        long bytes = modelBytes(MergeFlags.size(size, "--size"), err);
        if (against != null && !Files.isRegularFile(against)) throw MergeException.user("--against " + against + ": no such jar");
        if (repeat < 1) throw MergeException.user("--repeat must be at least 1");
        List<Integer> w = workers != null ? workers : Runtime.getRuntime().availableProcessors() > 1
                ? List.of(1, Runtime.getRuntime().availableProcessors()) : List.of(1);
        if (nativeLinear != null && !Files.isRegularFile(nativeLinear)) throw MergeException.user("--native " + nativeLinear + ": no such file");
        Path yardstick = noNative ? null : nativeLinear != null ? nativeLinear.toAbsolutePath() : Bench.nativeBesideCheckout().orElse(null);
        int bad = new Bench(new Bench.Options(bytes, methods, w, cold, xmx, work, results, baseline, updateBaseline, mmap, List.of(), against, repeat, cds,
                yardstick), out).run();
        return bad == 0 ? 0 : 3;
    }
}
