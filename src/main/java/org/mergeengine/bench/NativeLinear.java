package org.mergeengine.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The native yardstick: {@code native-linear} (a plain C linear merge, cmerge.c, with the engine's
 * arithmetic and bit-identical output) run on the bench's linear inputs, so that every merge's time
 * can be given as a ratio to native code on the same files in the same run. Warm, it is the
 * script's best of three runs with fsync; cold, the bench evicts the inputs and times the compiled
 * program itself on the script's plan (the script warms the inputs before it times anything).
 */
final class NativeLinear {
    private static final Pattern BEST = Pattern.compile("native linear: best ([0-9.]+) s");
    private static final Pattern RUN = Pattern.compile("cmerge: .* ([0-9.]+) s, \\d+ threads?");

    private final Path script;
    private final Path out;
    private final PrintStream log;

    NativeLinear(Path script, Path work, PrintStream log) {
        this.script = script;
        this.out = work.resolve("native-out");
        this.log = log;
    }

    /** The script beside a checkout ({@code ../shared/bench/native-linear} from the repository root), when it is there. */
    static Optional<Path> besideCheckout() {
        Path p = Path.of("..", "shared", "bench", "native-linear").toAbsolutePath().normalize();
        return Files.isRegularFile(p) ? Optional.of(p) : Optional.empty();
    }

    /** Seconds of the best of three warm runs with fsync, or NaN (said in the log) when the script fails. */
    double warm(List<Path> inputs) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(script.toString())); // run by its own #! line
        for (Path p : inputs) cmd.add(p.toString());
        cmd.addAll(List.of("--weights", weights(inputs.size()), "--fsync", "--runs", "3", "--out", out.toString()));
        Process p;
        try {
            p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        } catch (IOException e) {
            log.println("native-linear could not start (" + e.getMessage() + "): no native ratios; it needs Python 3 and gcc");
            return Double.NaN;
        }
        String text = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        int rc = p.waitFor();
        Matcher m = BEST.matcher(text);
        if (rc != 0 || !m.find()) {
            log.println("native-linear failed (exit " + rc + "), no native ratios: " + text.strip().lines().reduce((a, b) -> b).orElse(""));
            return Double.NaN;
        }
        return Double.parseDouble(m.group(1));
    }

    /**
     * Seconds of the compiled program on inputs evicted from the page cache (the best of two), with
     * fsync, on the plan the warm run left; NaN when there is none.
     */
    double cold(List<Path> inputs) throws IOException, InterruptedException {
        Path plan = out.resolve("plan.txt"), file = out.resolve("model.safetensors");
        Optional<Path> exe = compiled();
        if (!Files.isRegularFile(plan) || !Files.isRegularFile(file) || exe.isEmpty()) return Double.NaN;
        byte[] head = header(file);
        double best = Double.NaN;
        for (int i = 0; i < 2; i++) {
            Files.write(file, head); // a fresh output holding only its header, as the script starts each run
            Bench.evict(inputs);
            Process p = new ProcessBuilder(exe.get().toString(), "-s", plan.toString()).redirectErrorStream(true).start();
            String text = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            Matcher m = RUN.matcher(text);
            if (p.waitFor() != 0 || !m.find()) {
                log.println("cmerge failed on evicted inputs: " + text.strip());
                return Double.NaN;
            }
            double s = Double.parseDouble(m.group(1));
            best = Double.isNaN(best) ? s : Math.min(best, s);
        }
        return best;
    }

    /** Frees the disk the yardstick's output takes. */
    void clean() throws IOException {
        Bench.deleteTree(out);
    }

    /** The script keeps the program it compiles in ~/.cache/merge-engine-bench, one file per source and CPU: the newest is this run's. */
    private static Optional<Path> compiled() throws IOException {
        Path dir = Path.of(System.getProperty("user.home"), ".cache", "merge-engine-bench");
        if (!Files.isDirectory(dir)) return Optional.empty();
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(f -> f.getFileName().toString().startsWith("cmerge-") && !f.getFileName().toString().contains(".tmp") && Files.isExecutable(f))
                    .max(Comparator.comparing(f -> f.toFile().lastModified()));
        }
    }

    private static byte[] header(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(len, 0);
            int n = (int) (8 + len.getLong(0));
            ByteBuffer head = ByteBuffer.allocate(n);
            ch.read(head, 0);
            return head.array();
        }
    }

    /** Equal weights, as the bench's linear config has them (0.5 each for two models). */
    private static String weights(int n) {
        return String.join(",", Collections.nCopies(n, "0.5"));
    }
}
