package org.mergeengine.moe;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.engine.OutputFolder;
import org.mergeengine.formats.DType;
import org.mergeengine.tools.SyntheticModel;

/** kill -9 in the middle of `moe`, then the same command again: it reuses the gates, resumes, and writes the same bytes. */
class MoeCrashResumeTest {
    @TempDir
    Path dir;

    Process start(Path cfg, Path out) throws Exception {
        String java = ProcessHandle.current().info().command().orElse("java");
        return new ProcessBuilder(java, "-Xmx512m", "-cp", System.getProperty("java.class.path"), "org.mergeengine.cli.Main",
                "moe", cfg.toString(), out.toString(), "--workers", "1", "--out-shard-size", "2M", "--random-seed", "3")
                .redirectErrorStream(true).redirectOutput(dir.resolve("child-" + System.nanoTime() + ".log").toFile()).start();
    }

    static List<Path> files(Path d) throws Exception {
        try (Stream<Path> s = Files.list(d)) {
            return s.filter(p -> p.getFileName().toString().endsWith(".safetensors") || p.getFileName().toString().endsWith(".index.json")).sorted().toList();
        }
    }

    @Test
    void aKilledMoeRunResumesToTheSameBytes() throws Exception {
        SyntheticModel.Spec spec = new SyntheticModel.Spec(256, 704, 8, 4000, 4, 2, false);
        SyntheticModel.write(dir.resolve("base"), spec, DType.BF16, 1, 1, 0, 0);
        SyntheticModel.write(dir.resolve("e1"), spec, DType.BF16, 1, 2, 0.1, 0);
        SyntheticModel.write(dir.resolve("e2"), spec, DType.BF16, 1, 3, 0.1, 0);
        Path cfg = Files.writeString(dir.resolve("moe.yaml"), "base_model: " + dir.resolve("base") + "\ngate_mode: random\nexperts:\n"
                + "  - source_model: " + dir.resolve("e1") + "\n    noise_scale: 0.01\n"
                + "  - source_model: " + dir.resolve("e2") + "\n    residual_scale: 0.5\n");
        Path ref = dir.resolve("ref");
        assertEquals(0, start(cfg, ref).waitFor());

        Path work = Files.createDirectories(dir.resolve("work"));
        Path out = work.resolve("out");
        int resumedRuns = 0;
        for (long killAfter : new long[] {2, 15}) {
            Process p = start(cfg, out);
            boolean killed = false;
            while (p.isAlive()) {
                if (TestSupport.journalLines(work, "out") >= killAfter) {
                    p.destroyForcibly();
                    killed = p.waitFor() != 0;
                    break;
                }
                Thread.sleep(2);
            }
            if (!killed) {
                OutputFolder.deleteTree(out);
                continue;
            }
            assertFalse(Files.exists(out), "a killed run leaves no folder that looks complete");
            assertEquals(0, start(cfg, out).waitFor());
            try (Stream<Path> logs = Files.list(dir)) {
                String log = Files.readString(logs.filter(l -> l.getFileName().toString().startsWith("child-")).max(Comparator.comparing(Path::toString)).orElseThrow());
                if (log.contains("resumed an interrupted run") && log.contains("reusing the gates")) resumedRuns++;
            }
            List<Path> want = files(ref), got = files(out);
            assertEquals(want.size(), got.size());
            assertTrue(want.size() > 1, "sharded output");
            for (int i = 0; i < want.size(); i++) assertArrayEquals(Files.readAllBytes(want.get(i)), Files.readAllBytes(got.get(i)), got.get(i).toString());
            try (Stream<Path> s = Files.list(work)) {
                assertTrue(s.noneMatch(x -> x.getFileName().toString().startsWith(".out")), "temporary and router folders are gone");
            }
            OutputFolder.deleteTree(out);
        }
        assertTrue(resumedRuns >= 1, "a killed run was resumed, not redone: " + resumedRuns);
    }
}
