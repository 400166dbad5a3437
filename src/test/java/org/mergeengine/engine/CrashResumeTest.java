package org.mergeengine.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.formats.DType;
import org.mergeengine.tools.SyntheticModel;

/** kill -9 in the middle of a merge, then the same command again: it resumes and the result is byte-identical. */
class CrashResumeTest {
    @TempDir
    Path dir;

    Process start(Path cfg, Path out) throws Exception {
        String java = ProcessHandle.current().info().command().orElse("java");
        return new ProcessBuilder(java, "-Xmx512m", "-cp", System.getProperty("java.class.path"), "org.mergeengine.cli.Main",
                cfg.toString(), out.toString(), "--workers", "1", "--out-shard-size", "20M", "--chunk-elements", "65536")
                .redirectErrorStream(true).redirectOutput(dir.resolve("child-" + System.nanoTime() + ".log").toFile()).start();
    }

    static List<Path> files(Path d) throws Exception {
        try (Stream<Path> s = Files.list(d)) {
            return s.filter(p -> p.getFileName().toString().endsWith(".safetensors") || p.getFileName().toString().endsWith(".index.json")).sorted().toList();
        }
    }

    @Test
    void killedAtRandomPointsTheRunResumesToTheSameBytes() throws Exception {
        SyntheticModel.Spec spec = new SyntheticModel.Spec(512, 1408, 8, 16000, 8, 2, false);
        SyntheticModel.write(dir.resolve("base"), spec, DType.BF16, 1, 1, 0, 0);
        SyntheticModel.write(dir.resolve("ft"), spec, DType.BF16, 1, 2, 0.1, 0);
        Path cfg = Files.writeString(dir.resolve("ties.yaml"), "merge_method: ties\nbase_model: " + dir.resolve("base") + "\nmodels:\n  - model: "
                + dir.resolve("ft") + "\n    parameters: {weight: 1, density: 0.5}\n");
        Path ref = dir.resolve("ref");
        assertEquals(0, start(cfg, ref).waitFor());

        Path work = Files.createDirectories(dir.resolve("work"));
        Path out = work.resolve("out");
        int resumedRuns = 0;
        for (long killAfter : new long[] {1, 6, 15}) {
            Process p = start(cfg, out);
            boolean killed = false;
            while (p.isAlive()) {
                if (TestSupport.journalLines(work, "out") >= killAfter) {
                    p.destroyForcibly(); // SIGKILL: no shutdown hook, no cleanup
                    killed = p.waitFor() != 0; // a run that completed just before the signal landed was not killed
                    break;
                }
                Thread.sleep(2);
            }
            if (!killed) { // finished before the kill point: nothing to resume
                OutputFolder.deleteTree(out);
                continue;
            }
            assertFalse(Files.exists(out), "a killed run leaves no folder that looks complete");
            Process again = start(cfg, out);
            assertEquals(0, again.waitFor());
            try (Stream<Path> logs = Files.list(dir)) {
                String log = Files.readString(logs.filter(l -> l.getFileName().toString().startsWith("child-")).max(Comparator.comparing(Path::toString)).orElseThrow());
                if (log.contains("resumed an interrupted run")) resumedRuns++;
            }
            List<Path> want = files(ref), got = files(out);
            assertEquals(want.size(), got.size());
            for (int i = 0; i < want.size(); i++) assertArrayEquals(Files.readAllBytes(want.get(i)), Files.readAllBytes(got.get(i)), got.get(i).toString());
            try (Stream<Path> s = Files.list(work)) {
                assertTrue(s.noneMatch(x -> x.getFileName().toString().startsWith(".out.partial")), "the temporary folder is gone");
            }
            OutputFolder.deleteTree(out);
        }
        assertTrue(resumedRuns >= 2, "at least two of the three killed runs were resumed, not redone: " + resumedRuns);
    }
}
