package org.mergeengine.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The bench's native yardstick and the comparison with a stored baseline. A stand-in script
 * prints what native-linear prints (the real one needs Python and gcc, which tests may not).
 */
class NativeLinearTest {
    @TempDir Path dir;

    private Path script(String body) throws Exception {
        Path p = dir.resolve("native-linear");
        Files.writeString(p, "#!/bin/sh\n" + body + "\n");
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
        return p;
    }

    @Test
    void takesTheBestRunThatTheScriptReportsAndPassesItTheInputsAndFsync() throws Exception {
        Path args = dir.resolve("args");
        Path s = script("echo \"$@\" > " + args + "\n"
                + "echo 'run 1: 3.193 s  (cmerge: 3.049496576 GB in, 1.524748288 GB out, 3.191 s, 2 threads, fsync)'\n"
                + "echo 'run 2: 2.893 s  (cmerge: 3.049496576 GB in, 1.524748288 GB out, 2.891 s, 2 threads, fsync)'\n"
                + "echo 'native linear: best 2.893 s for 3.05 GB in, fsync'");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        NativeLinear n = new NativeLinear(s, dir, new PrintStream(log, true, StandardCharsets.UTF_8));
        assertEquals(2.893, n.warm(List.of(dir.resolve("base"), dir.resolve("ft1"))), 1e-9);
        String given = Files.readString(args).trim();
        assertTrue(given.startsWith(dir.resolve("base") + " " + dir.resolve("ft1") + " --weights 0.5,0.5 --fsync"), given);
        assertTrue(given.contains("--out " + dir.resolve("native-out")), given);
    }

    @Test
    void aFailingScriptGivesNoRatioAndSaysWhy() throws Exception {
        Path s = script("echo 'error: gcc failed: no compiler' >&2\nexit 1");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        NativeLinear n = new NativeLinear(s, dir, new PrintStream(log, true, StandardCharsets.UTF_8));
        assertTrue(Double.isNaN(n.warm(List.of(dir.resolve("base")))));
        String said = log.toString(StandardCharsets.UTF_8);
        assertTrue(said.contains("native-linear failed (exit 1)") && said.contains("gcc failed"), said);
        assertTrue(Double.isNaN(n.cold(List.of(dir.resolve("base")))), "no plan left behind: no cold figure either");
    }

    @Test
    void aScriptThatCannotStartGivesNoRatioAndSaysWhatItNeeds() throws Exception {
        Path s = script("exit 0");
        Files.writeString(s, "#!/no/such/interpreter\n");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        NativeLinear n = new NativeLinear(s, dir, new PrintStream(log, true, StandardCharsets.UTF_8));
        assertTrue(Double.isNaN(n.warm(List.of(dir.resolve("base")))));
        assertTrue(log.toString(StandardCharsets.UTF_8).contains("needs Python 3 and gcc"), log.toString(StandardCharsets.UTF_8));
    }

    private static Bench.Run run(String method, int workers, double seconds, double nativeSeconds) {
        return new Bench.Run(method, workers, "warm", seconds, 4.0, 4.0 / seconds, 1, 1, 1, 1, 0, seconds - 0.3, Double.NaN, nativeSeconds);
    }

    private int compare(List<Bench.Run> runs, String baseline, ByteArrayOutputStream log) throws Exception {
        Path b = Files.writeString(dir.resolve("baseline.json"), baseline);
        Bench bench = new Bench(new Bench.Options(1000, List.of("linear"), List.of(2), false, "1g", dir, dir, b, false, false, List.of(), null, 1, true,
                dir.resolve("native-linear")), new PrintStream(log, true, StandardCharsets.UTF_8));
        return bench.compare(runs);
    }

    @Test
    void aRunIsComparedByItsRatioToNativeCodeWhenTheBaselineHasOne() throws Exception {
        // Ceiling ratio 4/8 = 0.5 is far below the stored 0.9; native time / merge time 3/8 = 0.375
        // is within 15% of the stored 0.4: the native ratio decides.
        String baseline = "{\"model_bytes\": 1000, \"ratios\": {\"linear/w2/warm\": 0.9}, \"native_ratios\": {\"linear/w2/warm\": 0.4}}";
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        assertEquals(0, compare(List.of(run("linear", 2, 8.0, 3.0)), baseline, log), log.toString(StandardCharsets.UTF_8));
        log.reset();
        assertEquals(1, compare(List.of(run("linear", 2, 10.0, 3.0)), baseline, log));
        assertTrue(log.toString(StandardCharsets.UTF_8).contains("REGRESSION: linear/w2/warm native time / merge time 0.300"), log.toString(StandardCharsets.UTF_8));
    }

    @Test
    void withoutTheYardstickTheCeilingRatioIsCompared() throws Exception {
        String baseline = "{\"model_bytes\": 1000, \"ratios\": {\"linear/w2/warm\": 0.9}, \"native_ratios\": {\"linear/w2/warm\": 0.4}}";
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        assertEquals(1, compare(List.of(run("linear", 2, 8.0, Double.NaN)), baseline, log));
        assertTrue(log.toString(StandardCharsets.UTF_8).contains("REGRESSION: linear/w2/warm ratio 0.500"), log.toString(StandardCharsets.UTF_8));
    }

    @Test
    void anUpdatedBaselineKeepsTheStoredCeilingRatiosWhenTheRunHasTheYardstick() throws Exception {
        Path b = Files.writeString(dir.resolve("stored.json"),
                "{\"model_bytes\": 1000, \"ratios\": {\"linear/w2/warm\": 0.25}, \"native_ratios\": {\"linear/w2/warm\": 0.4}}");
        Bench bench = new Bench(new Bench.Options(1000, List.of("linear"), List.of(2), false, "1g", dir, dir, b, true, false, List.of(), null, 1, true,
                dir.resolve("native-linear")), new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));
        var withNative = bench.baseline(List.of(run("linear", 2, 8.0, 3.0)));
        assertEquals(0.25, withNative.path("ratios").path("linear/w2/warm").asDouble(), 1e-12, "one day's ceiling does not replace the stored ratio");
        assertEquals(0.375, withNative.path("native_ratios").path("linear/w2/warm").asDouble(), 1e-12);
        var without = bench.baseline(List.of(run("linear", 2, 8.0, Double.NaN)));
        assertEquals(0.5, without.path("ratios").path("linear/w2/warm").asDouble(), 1e-12, "without the yardstick the ceiling ratio is all there is");
    }

    @Test
    void timesAreGivenAsMultiplesOfNativeCode() {
        Bench.Run r = run("ties", 2, 6.0, 2.0);
        assertEquals(3.0, r.timesNative(), 1e-12);
        assertTrue(Double.isNaN(run("ties", 2, 6.0, Double.NaN).timesNative()));
    }
}
