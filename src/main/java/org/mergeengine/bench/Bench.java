package org.mergeengine.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.Json;
import org.mergeengine.tools.ExampleModels;
import org.mergeengine.tools.SyntheticModel;

/**
 * The benchmark: merges of synthetic Llama-shaped bf16 models, each timed against the ceiling
 * measured on the same files in the same run (reading every input byte once plus writing the
 * output's bytes once), with the merge's peak RSS and CPU time sampled from /proc. Results go to
 * JSON and an SVG chart; ratios are compared with a stored baseline.
 */
public final class Bench {
    public record Options(long modelBytes, List<String> methods, List<Integer> workers, boolean cold, String xmx, Path work, Path results,
                          Path baseline, boolean updateBaseline, boolean mmap, List<String> extraArgs, Path against, int repeat,
                          boolean cds, Path nativeLinear) {}

    /** One merge; {@code engineSeconds} is the time the merge itself reports (plan to finished folder), without JVM and actor-system start. */
    public record Run(String method, int workers, String cache, double seconds, double ceilingSeconds, double ratio, double inputGBps,
                      long peakRss, long peakRssAnon, double cpuSeconds, int exitCode, double engineSeconds, double againstSeconds,
                      double nativeSeconds) {
        /** How many times faster than the earlier build (above 1: faster); NaN without one. */
        public double speedup() {
            return againstSeconds / seconds;
        }

        /** The whole process's time as a multiple of native code's linear merge on the same files (1.0 = as fast); NaN without it. */
        public double timesNative() {
            return seconds / nativeSeconds;
        }

        Run withNative(double s) {
            return new Run(method, workers, cache, seconds, ceilingSeconds, ratio, inputGBps, peakRss, peakRssAnon, cpuSeconds, exitCode,
                    engineSeconds, againstSeconds, s);
        }
    }

    private final Options o;
    private final PrintStream log;

    public Bench(Options o, PrintStream log) {
        this.o = o;
        this.log = log;
    }

    /** The native yardstick beside the checkout ({@code ../shared/bench/native-linear} from the repository root), when it is there. */
    public static Optional<Path> nativeBesideCheckout() {
        return NativeLinear.besideCheckout();
    }

    /** Runs everything; returns the number of ratios that fell more than 15% below the baseline. */
    public int run() throws Exception {
        Files.createDirectories(o.work());
        Files.createDirectories(o.results());
        Path models = o.work().resolve("models-" + o.modelBytes());
        generate(models);
        List<Run> runs = new ArrayList<>();
        Map<String, Double> nativeSeconds = yardstick(models);
        for (String method : o.methods()) {
            List<Path> inputs = inputsOf(models, method);
            Path cfg = writeConfig(models, method);
            long inBytes = bytes(inputs), outBytes = bytes(List.of(models.resolve("base")));
            for (String cache : o.cold() ? List.of("warm", "cold") : List.of("warm")) {
                // The disk's write speed varies from run to run: take the median of three ceilings.
                double[] c3 = {ceiling(inputs, outBytes, cache.equals("cold")), ceiling(inputs, outBytes, cache.equals("cold")),
                        ceiling(inputs, outBytes, cache.equals("cold"))};
                Arrays.sort(c3);
                double ceiling = c3[1];
                for (int w : o.workers()) {
                    // Each build runs `repeat` times, alternating; the fastest run of each counts (this machine's
                    // noise only ever adds time). The earlier build runs right after, on the same files in the same
                    // state, so drift of the machine hardly moves the comparison, unlike a stored baseline.
                    Run r = null, old = null;
                    for (int rep = 0; rep < Math.max(1, o.repeat()); rep++) {
                        if (cache.equals("cold")) evict(inputs);
                        else warm(inputs);
                        Run x = merge(cfg, method, w, cache, ceiling, inBytes, thisJar());
                        if (r == null || x.exitCode() != 0 || (r.exitCode() == 0 && x.seconds() < r.seconds())) r = x;
                        if (o.against() == null) continue;
                        if (cache.equals("cold")) evict(inputs);
                        else warm(inputs);
                        Run y = merge(cfg, method, w, cache, ceiling, inBytes, o.against().toString());
                        if (old == null || y.exitCode() != 0 || (old.exitCode() == 0 && y.seconds() < old.seconds())) old = y;
                    }
                    if (old != null) {
                        r = new Run(r.method(), r.workers(), r.cache(), r.seconds(), r.ceilingSeconds(), r.ratio(), r.inputGBps(), r.peakRss(),
                                r.peakRssAnon(), r.cpuSeconds(), old.exitCode() == 0 ? r.exitCode() : old.exitCode(), r.engineSeconds(), old.seconds(),
                                Double.NaN);
                    }
                    r = r.withNative(nativeSeconds.getOrDefault(cache, Double.NaN));
                    runs.add(r);
                    log.println(String.format(Locale.ROOT, "%-16s workers=%d %-4s merge %7.2fs  ceiling %6.2fs  ratio %.2f  (engine %.2fs, ratio %.2f)  %5.2f GB/s in  peak RSS %s (anon %s)  CPU %.1fs%s",
                            method, w, cache, r.seconds, r.ceilingSeconds, r.ratio, r.engineSeconds, r.ceilingSeconds / r.engineSeconds, r.inputGBps,
                            mb(r.peakRss), mb(r.peakRssAnon), r.cpuSeconds,
                            (Double.isNaN(r.nativeSeconds()) ? "" : String.format(Locale.ROOT, "  native %.2fs: %.2fx (engine %.2fx)", r.nativeSeconds(),
                                    r.timesNative(), r.engineSeconds() / r.nativeSeconds()))
                                    + (o.against() == null ? "" : String.format(Locale.ROOT, "  earlier build %.2fs: %.2fx", r.againstSeconds(), r.speedup()))
                                    + (r.exitCode == 0 ? "" : "  FAILED exit " + r.exitCode)));
                }
            }
        }
        summary(runs);
        double cat = catSeconds(inputsOf(models, "linear"));
        log.println(String.format(Locale.ROOT, "cat of the two linear inputs (warm): %.2fs", cat));
        ObjectNode report = report(runs, cat);
        Json.write(o.results().resolve("bench.json"), report);
        Files.writeString(o.results().resolve("bench.svg"), svg(runs), StandardCharsets.UTF_8);
        log.println("wrote " + o.results().resolve("bench.json") + " and " + o.results().resolve("bench.svg"));
        int regressions = o.against() != null ? compareAgainst(runs) : compare(runs);
        if (o.updateBaseline()) {
            Json.write(o.baseline(), baseline(runs));
            log.println("baseline updated: " + o.baseline());
        }
        return regressions;
    }

    /**
     * The native yardstick's time for the bench's linear merge, warm (and cold, when the bench
     * runs cold): none without the script.
     */
    private Map<String, Double> yardstick(Path models) throws IOException, InterruptedException {
        Map<String, Double> s = new HashMap<>();
        if (o.nativeLinear() == null) return s;
        NativeLinear n = new NativeLinear(o.nativeLinear(), o.work(), log);
        List<Path> inputs = inputsOf(models, "linear");
        try {
            warm(inputs);
            double warm = n.warm(inputs);
            if (Double.isNaN(warm)) return s;
            s.put("warm", warm);
            log.println(String.format(Locale.ROOT, "native linear (%s, 2 threads, fsync): %.2fs warm", o.nativeLinear(), warm));
            if (o.cold()) {
                double cold = n.cold(inputs);
                if (!Double.isNaN(cold)) {
                    s.put("cold", cold);
                    log.println(String.format(Locale.ROOT, "native linear: %.2fs cold", cold));
                }
            }
        } finally {
            n.clean();
        }
        return s;
    }

    /** The ratios the targets are stated in: each method to linear, two workers to one. */
    private void summary(List<Run> runs) {
        for (Run r : runs) {
            if (r.exitCode() != 0) continue;
            for (Run q : runs) {
                if (q.exitCode() != 0 || !q.method().equals(r.method()) || !q.cache().equals(r.cache()) || q.workers() != 1 || r.workers() <= 1) continue;
                log.println(String.format(Locale.ROOT, "%s %s: %d workers %.2fx as fast as one", r.method(), r.cache(), r.workers(), q.seconds() / r.seconds()));
            }
            Run lin = linearOf(runs, r);
            if (lin != null && lin != r) {
                log.println(String.format(Locale.ROOT, "%s w%d %s: %.2fx linear's time", r.method(), r.workers(), r.cache(), r.seconds() / lin.seconds()));
            }
        }
    }

    private static Run linearOf(List<Run> runs, Run r) {
        for (Run q : runs) {
            if (q.method().equals("linear") && q.workers() == r.workers() && q.cache().equals(r.cache()) && q.exitCode() == 0) return q;
        }
        return null;
    }

    private void generate(Path models) throws IOException {
        SyntheticModel.Spec spec = SyntheticModel.Spec.ofSize(o.modelBytes());
        for (String[] m : new String[][] {{"base", "0"}, {"ft1", "0.05"}, {"ft2", "0.05"}}) {
            Path dir = models.resolve(m[0]);
            if (Files.exists(dir.resolve("config.json"))) continue;
            long t0 = System.nanoTime();
            SyntheticModel.write(dir, spec, DType.BF16, 1, m[0].hashCode(), Double.parseDouble(m[1]), 2_000_000_000L);
            log.println(String.format(Locale.ROOT, "generated %s (%s, %d layers, hidden %d) in %.1fs", dir, mb(bytes(List.of(dir))), spec.layers(),
                    spec.hidden(), (System.nanoTime() - t0) / 1e9));
        }
    }

    static List<Path> inputsOf(Path models, String method) {
        return method.equals("model_stock") ? List.of(models.resolve("base"), models.resolve("ft1"), models.resolve("ft2"))
                : List.of(models.resolve("base"), models.resolve("ft1"));
    }

    private Path writeConfig(Path models, String method) throws IOException {
        String base = models.resolve("base").toAbsolutePath().toString(), ft1 = models.resolve("ft1").toAbsolutePath().toString(),
                ft2 = models.resolve("ft2").toAbsolutePath().toString();
        String yaml;
        switch (method) {
            case "linear":
                yaml = "merge_method: linear\nmodels:\n  - model: " + base + "\n    parameters: {weight: 0.5}\n  - model: " + ft1 + "\n    parameters: {weight: 0.5}\n";
                break;
            case "slerp":
                yaml = "merge_method: slerp\nbase_model: " + base + "\nparameters: {t: 0.4}\nmodels:\n  - model: " + base + "\n  - model: " + ft1 + "\n";
                break;
            case "model_stock":
                yaml = "merge_method: model_stock\nbase_model: " + base + "\nmodels:\n  - model: " + ft1 + "\n  - model: " + ft2 + "\n";
                break;
            default:
                yaml = "merge_method: " + method + "\nbase_model: " + base + "\nmodels:\n  - model: " + ft1 + "\n    parameters: {weight: 1.0, density: 0.5}\n";
        }
        Path p = o.work().resolve(method + ".yaml");
        Files.writeString(p, yaml);
        return p;
    }

    static long bytes(List<Path> dirs) throws IOException {
        long n = 0;
        for (Path d : dirs) for (Path f : weightFiles(d)) n += Files.size(f);
        return n;
    }

    static List<Path> weightFiles(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.toString().endsWith(".safetensors")).sorted().toList();
        }
    }

    /** Reading every input byte once plus writing the output's bytes once (and syncing them), as fast as plain I/O goes. */
    private double ceiling(List<Path> inputs, long outBytes, boolean cold) throws IOException, InterruptedException {
        if (cold) evict(inputs);
        else warm(inputs);
        long t0 = System.nanoTime();
        readAll(inputs);
        Path out = o.work().resolve("ceiling.out");
        ByteBuffer zeros = ByteBuffer.allocateDirect(8 << 20);
        try (FileChannel ch = FileChannel.open(out, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            long left = outBytes;
            while (left > 0) {
                zeros.clear().limit((int) Math.min(zeros.capacity(), left));
                left -= ch.write(zeros);
            }
            ch.force(true);
        }
        double s = (System.nanoTime() - t0) / 1e9;
        Files.deleteIfExists(out);
        return s;
    }

    private static void readAll(List<Path> inputs) throws IOException {
        ByteBuffer buf = ByteBuffer.allocateDirect(8 << 20);
        for (Path d : inputs) {
            for (Path f : weightFiles(d)) {
                try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
                    while (ch.read(buf.clear()) > 0) {
                        // only the reading counts
                    }
                }
            }
        }
    }

    private static void warm(List<Path> inputs) throws IOException {
        readAll(inputs);
    }

    /** Drops the files' pages from the page cache (posix_fadvise DONTNEED through dd), so the next read hits the disk. */
    static void evict(List<Path> inputs) throws IOException, InterruptedException {
        for (Path d : inputs) {
            for (Path f : weightFiles(d)) {
                new ProcessBuilder("dd", "if=" + f, "iflag=nocache", "count=0").redirectErrorStream(true)
                        .redirectOutput(ProcessBuilder.Redirect.DISCARD).start().waitFor();
            }
        }
    }

    private double catSeconds(List<Path> inputs) throws Exception {
        warm(inputs);
        List<String> cmd = new ArrayList<>(List.of("cat"));
        for (Path d : inputs) for (Path f : weightFiles(d)) cmd.add(f.toString());
        long t0 = System.nanoTime();
        new ProcessBuilder(cmd).redirectOutput(ProcessBuilder.Redirect.DISCARD).start().waitFor();
        return (System.nanoTime() - t0) / 1e9;
    }

    private static String thisJar() throws URISyntaxException {
        return Path.of(Bench.class.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
    }

    /** With an earlier build: a merge more than 15% slower than the earlier build's is a regression. */
    private int compareAgainst(List<Run> runs) {
        int bad = 0;
        double logSum = 0;
        int n = 0;
        for (Run x : runs) {
            if (x.exitCode != 0) {
                bad++;
                continue;
            }
            logSum += Math.log(x.speedup());
            n++;
            if (x.speedup() < 0.85) {
                log.println(String.format(Locale.ROOT, "REGRESSION: %s takes %.2fs, the earlier build %.2fs", key(x), x.seconds, x.againstSeconds));
                bad++;
            }
        }
        if (n > 0) log.println(String.format(Locale.ROOT, "against %s: %.2fx on the geometric mean of %d merges", o.against(), Math.exp(logSum / n), n));
        return bad;
    }

    private final Map<String, Optional<Path>> archives = new HashMap<>();

    /**
     * JVM options that start {@code jar} as the launcher (target/merge-engine) does: its JIT
     * thresholds and a class-data archive of the jar. Each jar gets its own archive, made by a small
     * linear merge (under -XX:ArchiveClassesAtExit, or recorded for an ahead-of-time cache on Java 25), so an earlier build is measured the same way as this one.
     */
    private List<String> launcherOptions(String jar) {
        if (!o.cds()) return List.of();
        List<String> opts = new ArrayList<>(JIT_OPTIONS);
        archives.computeIfAbsent(jar, this::archive).ifPresent(p -> opts.addAll(AOT
                ? List.of("-Xlog:aot=off", "-Xlog:cds=off", "-XX:AOTMode=auto", "-XX:AOTCache=" + p)
                : List.of("-Xshare:auto", "-Xlog:cds=off", "-Xlog:cds+dynamic=off", "-XX:SharedArchiveFile=" + p)));
        return opts;
    }

    /** As the launcher: on Java 25 and later the archive is an ahead-of-time cache (classes linked, method profiles kept). */
    private static final boolean AOT = Runtime.version().feature() >= 25;

    /**
     * The compiler thresholds the launcher sets (src/main/sh/merge-engine says why); measured with
     * the archive, since both are what a launcher start is.
     */
    public static final List<String> JIT_OPTIONS = List.of("-XX:CompileThresholdScaling=10", "-XX:CompileCommand=quiet",
            "-XX:CompileCommand=CompileThresholdScaling,org.mergeengine.*::*,1.0");

    private Optional<Path> archive(String jar) {
        try {
            Path tiny = o.work().resolve("tiny");
            if (!Files.exists(tiny.resolve("ft1/config.json"))) ExampleModels.write(tiny);
            Path cfg = Files.writeString(tiny.resolve("linear.yaml"), "merge_method: linear\nmodels:\n  - model: " + tiny.resolve("base")
                    + "\n    parameters: {weight: 0.5}\n  - model: " + tiny.resolve("ft1") + "\n    parameters: {weight: 0.5}\n");
            Path archive = o.work().resolve("cds-" + archives.size() + (AOT ? ".aot" : ".jsa")).toAbsolutePath();
            Path recorded = Path.of(archive + ".config");
            Files.deleteIfExists(archive);
            Path out = tiny.resolve("out");
            deleteTree(out);
            String java = ProcessHandle.current().info().command().orElse("java");
            List<String> cmd = new ArrayList<>(List.of(java));
            if (AOT) {
                cmd.addAll(JIT_OPTIONS);
                cmd.addAll(List.of("-Xlog:aot=off", "-Xlog:cds=off", "-XX:AOTMode=record", "-XX:AOTConfiguration=" + recorded));
            } else {
                cmd.addAll(List.of("-Xlog:cds=off", "-Xlog:cds+dynamic=off", "-XX:ArchiveClassesAtExit=" + archive));
            }
            cmd.addAll(List.of("-jar", jar, cfg.toString(), out.toString(), "--quiet"));
            int rc = quietly(cmd);
            if (AOT && rc == 0) {
                List<String> create = new ArrayList<>(List.of(java));
                create.addAll(JIT_OPTIONS);
                create.addAll(List.of("-Xlog:aot=off", "-Xlog:cds=off", "-XX:AOTMode=create", "-XX:AOTConfiguration=" + recorded,
                        "-XX:AOTCache=" + archive, "-jar", jar));
                rc = quietly(create);
            }
            Files.deleteIfExists(recorded);
            deleteTree(out);
            if (rc != 0 || !Files.exists(archive)) {
                log.println("no class-data archive for " + jar + " (exit " + rc + "): its merges run without one");
                return Optional.empty();
            }
            return Optional.of(archive);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Optional.empty();
        }
    }

    /**
     * A child JVM that runs the merge itself: a plain {@code java -jar} start would otherwise hand
     * over to the launcher script (cli.Launch), and the bench must time and sample the JVM it
     * starts, with the archive it chose or (--no-cds) none.
     */
    static ProcessBuilder direct(ProcessBuilder pb) {
        pb.environment().put("MERGE_ENGINE_LAUNCHED", "1"); // the variable the launcher script sets for its JVMs
        return pb;
    }

    private static int quietly(List<String> cmd) throws IOException, InterruptedException {
        return direct(new ProcessBuilder(cmd)).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start().waitFor();
    }

    private Run merge(Path cfg, String method, int workers, String cache, double ceiling, long inBytes, String jar) throws Exception {
        Path out = o.work().resolve("out-" + method);
        deleteTree(out);
        String java = ProcessHandle.current().info().command().orElse("java");
        // Not --quiet: the last line says how long the merge itself took.
        List<String> cmd = new ArrayList<>(List.of(java, "-Xmx" + o.xmx()));
        cmd.addAll(launcherOptions(jar));
        cmd.addAll(List.of("-jar", jar, cfg.toString(), out.toString(), "--workers", Integer.toString(workers)));
        if (o.mmap()) cmd.add("--mmap");
        cmd.addAll(o.extraArgs());
        long t0 = System.nanoTime();
        Path logFile = o.work().resolve("merge-" + method + ".log");
        Process p = direct(new ProcessBuilder(cmd)).redirectErrorStream(true).redirectOutput(logFile.toFile()).start();
        long hwm = 0, anon = 0;
        double cpu = 0;
        Path status = Path.of("/proc", Long.toString(p.pid()), "status"), stat = Path.of("/proc", Long.toString(p.pid()), "stat");
        while (p.isAlive()) {
            try {
                for (String line : Files.readAllLines(status)) {
                    if (line.startsWith("VmHWM:")) hwm = Math.max(hwm, kb(line));
                    if (line.startsWith("RssAnon:")) anon = Math.max(anon, kb(line));
                }
                String[] f = Files.readString(stat).split("\\) ", 2)[1].split(" ");
                cpu = (Long.parseLong(f[11]) + Long.parseLong(f[12])) / 100.0;
            } catch (IOException | RuntimeException gone) {
                // the process ended between the check and the read
            }
            Thread.sleep(20);
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        int code = p.waitFor();
        deleteTree(out);
        double engine = secs;
        // The closing line reads "..., 6.08s merging, 7.64s in all" (earlier builds: "written) in 7.64s into").
        Matcher m = Pattern.compile("([0-9.]+)s in all$|written\\) in ([0-9.]+)s into", Pattern.MULTILINE).matcher(Files.readString(logFile));
        while (m.find()) engine = Double.parseDouble(m.group(1) != null ? m.group(1) : m.group(2));
        return new Run(method, workers, cache, secs, ceiling, ceiling / secs, inBytes / 1e9 / secs, hwm, anon, cpu, code, engine, Double.NaN, Double.NaN);
    }

    static String relativeToHere(Path p) {
        try {
            return Path.of("").toAbsolutePath().relativize(p.toAbsolutePath().normalize()).toString();
        } catch (IllegalArgumentException e) {
            return p.toString();
        }
    }

    private static long kb(String line) {
        return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
    }

    static String mb(long b) {
        return String.format(Locale.ROOT, "%.0f MB", b / 1e6);
    }

    private ObjectNode report(List<Run> runs, double cat) {
        ObjectNode r = Json.MAPPER.createObjectNode();
        r.put("model_bytes", o.modelBytes());
        r.put("xmx", o.xmx());
        r.put("io", o.mmap() ? "mmap" : "read");
        r.put("class_data_archive", o.cds());
        ArrayNode jit = r.putArray("jit_options");
        if (o.cds()) JIT_OPTIONS.forEach(jit::add);
        r.put("cpus", Runtime.getRuntime().availableProcessors());
        r.put("cat_seconds_warm", cat);
        // Relative to where the bench ran (../shared/...): a report that goes into the repository names no path of one machine.
        if (o.nativeLinear() != null) r.put("native_linear", relativeToHere(o.nativeLinear()));
        ArrayNode a = r.putArray("runs");
        for (Run x : runs) {
            ObjectNode n = a.addObject();
            n.put("method", x.method);
            n.put("workers", x.workers);
            n.put("cache", x.cache);
            n.put("seconds", x.seconds);
            n.put("ceiling_seconds", x.ceilingSeconds);
            n.put("ratio", x.ratio);
            n.put("engine_seconds", x.engineSeconds);
            n.put("engine_ratio", x.ceilingSeconds / x.engineSeconds);
            if (!Double.isNaN(x.againstSeconds)) {
                n.put("earlier_build_seconds", x.againstSeconds);
                n.put("speedup_vs_earlier_build", x.speedup());
            }
            if (!Double.isNaN(x.nativeSeconds)) {
                n.put("native_seconds", x.nativeSeconds);
                n.put("times_native", x.timesNative());
                n.put("engine_times_native", x.engineSeconds / x.nativeSeconds);
            }
            Run lin = linearOf(runs, x);
            if (lin != null && lin != x) n.put("times_linear", x.seconds / lin.seconds);
            n.put("input_gb_per_s", x.inputGBps);
            n.put("peak_rss_bytes", x.peakRss);
            n.put("peak_rss_anon_bytes", x.peakRssAnon);
            n.put("cpu_seconds", x.cpuSeconds);
            n.put("exit_code", x.exitCode);
        }
        return r;
    }

    ObjectNode baseline(List<Run> runs) throws IOException {
        ObjectNode b = Json.MAPPER.createObjectNode();
        boolean withNative = runs.stream().anyMatch(x -> !Double.isNaN(x.nativeSeconds));
        JsonNode stored = Files.isRegularFile(o.baseline()) ? Json.MAPPER.readTree(o.baseline().toFile()) : null;
        // Runs with the yardstick are compared by native_ratios; the ceiling ratios, for runs without
        // it, stay as stored: one day's ceiling (its write half 0.2 to 3.3 s) would set them where a
        // later run on a quicker day fails.
        boolean keepRatios = withNative && stored != null && stored.path("ratios").isObject() && stored.path("model_bytes").asLong(0) == o.modelBytes();
        b.put("note", keepRatios
                ? "ratio = ceiling time / merge time (kept from an earlier run: the ceiling's write half varies too much between runs to restate it); native_ratios = native-linear's time / merge time, from a run with the native yardstick; benchmarks/run compares native_ratios where it has the yardstick, else ratios, and fails a run more than 15% below its entry"
                : "ratio = ceiling time / merge time, from benchmarks/run; a run more than 15% below its entry fails");
        b.put("model_bytes", o.modelBytes());
        if (keepRatios) {
            b.set("ratios", stored.get("ratios"));
        } else {
            ObjectNode r = b.putObject("ratios");
            for (Run x : runs) if (x.exitCode == 0) r.put(key(x), Math.round(x.ratio * 1000) / 1000.0);
        }
        ObjectNode nr = b.putObject("native_ratios");
        for (Run x : runs) if (x.exitCode == 0 && !Double.isNaN(x.nativeSeconds)) nr.put(key(x), Math.round(1000 / x.timesNative()) / 1000.0);
        return b;
    }

    static String key(Run x) {
        return x.method + "/w" + x.workers + "/" + x.cache;
    }

    int compare(List<Run> runs) {
        int bad = 0;
        for (Run x : runs) {
            if (x.exitCode != 0) {
                log.println("FAILED: " + key(x) + " exited " + x.exitCode);
                bad++;
            }
        }
        if (!Files.isRegularFile(o.baseline())) {
            log.println("no baseline at " + o.baseline() + " (run with --update-baseline to store one)");
            return bad;
        }
        JsonNode stored = Json.read(o.baseline());
        // Ratios depend on the model size (the JVM's start weighs more on small models): another
        // size has nothing to be compared with.
        long size = stored.path("model_bytes").asLong(0);
        if (size != 0 && size != o.modelBytes()) {
            log.println("the baseline is for " + size + "-byte models and this run's are " + o.modelBytes() + ": not compared");
            return bad;
        }
        // Native time over merge time where both this run and the baseline have the yardstick: the
        // disk's write speed moves a native merge with fsync as it moves the engine, and a bare
        // read+write ceiling varied far more from run to run.
        JsonNode b = stored.path("ratios"), nb = stored.path("native_ratios");
        for (Run x : runs) {
            JsonNode wantNative = nb.get(key(x));
            boolean useNative = wantNative != null && !Double.isNaN(x.nativeSeconds);
            JsonNode want = useNative ? wantNative : b.get(key(x));
            if (want == null) continue;
            double got = useNative ? 1 / x.timesNative() : x.ratio;
            if (got < 0.85 * want.asDouble()) {
                log.println(String.format(Locale.ROOT, "REGRESSION: %s %s %.3f is more than 15%% below the baseline %.3f", key(x),
                        useNative ? "native time / merge time" : "ratio", got, want.asDouble()));
                bad++;
            }
        }
        if (bad == 0) log.println("no regression against " + o.baseline());
        return bad;
    }

    /** A bar chart of the ratios (1.0 = as fast as plain reading and writing). */
    static String svg(List<Run> runs) {
        int bar = 26, gap = 6, left = 230, width = 760, height = 60 + runs.size() * (bar + gap);
        double max = 1.0;
        for (Run r : runs) max = Math.max(max, r.ratio);
        StringBuilder s = new StringBuilder();
        s.append(String.format(Locale.ROOT, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' font-family='sans-serif' font-size='13'>%n", width, height));
        s.append("<rect width='100%' height='100%' fill='white'/>\n");
        s.append("<text x='10' y='22' font-size='15' font-weight='bold'>merge time vs read+write ceiling (ratio; 1.0 = disk speed)</text>\n");
        double scale = (width - left - 80) / max;
        int y = 40;
        for (Run r : runs) {
            String color = r.cache.equals("cold") ? "#4a7ab5" : "#e08a2c";
            s.append(String.format(Locale.ROOT, "<text x='10' y='%d'>%s, %d worker(s), %s</text>%n", y + 18, r.method, r.workers, r.cache));
            s.append(String.format(Locale.ROOT, "<rect x='%d' y='%d' width='%.1f' height='%d' fill='%s'/>%n", left, y, Math.max(1, r.ratio * scale), bar, color));
            s.append(String.format(Locale.ROOT, "<text x='%.1f' y='%d'>%.2f</text>%n", left + r.ratio * scale + 6, y + 18, r.ratio));
            y += bar + gap;
        }
        s.append(String.format(Locale.ROOT, "<line x1='%.1f' y1='35' x2='%.1f' y2='%d' stroke='black' stroke-dasharray='4'/>%n", left + scale, left + scale, height - 5));
        s.append("</svg>\n");
        return s.toString();
    }

    /** Removes a benchmark's output folder, if any. */
    static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) return;
        try (Stream<Path> all = Files.walk(dir)) {
            for (Path p : all.sorted(Comparator.reverseOrder()).toList()) Files.delete(p);
        }
    }
}
