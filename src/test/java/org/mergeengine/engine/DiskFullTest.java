package org.mergeengine.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.formats.DType;
import org.mergeengine.tools.SyntheticModel;

/** A merge onto a disk that fills up: a clear error, and nothing that looks like a finished model. */
class DiskFullTest {
    @TempDir
    Path dir;

    @Test
    void aFullDiskGivesAClearErrorAndNoOutputFolder() throws Exception {
        Path small = Files.createDirectories(dir.resolve("small"));
        Process mount = new ProcessBuilder("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small.toString()).redirectErrorStream(true).start();
        Assumptions.assumeTrue(mount.waitFor() == 0, "this machine does not let the test mount a 1 MB tmpfs");
        try {
            SyntheticModel.Spec spec = new SyntheticModel.Spec(64, 128, 4, 2000, 4, 2, false);
            SyntheticModel.write(dir.resolve("a"), spec, DType.F32, 1, 1, 0, 0);
            SyntheticModel.write(dir.resolve("b"), spec, DType.F32, 1, 2, 0.1, 0);
            Path cfg = Files.writeString(dir.resolve("c.yaml"), "merge_method: linear\nmodels:\n  - {model: " + dir.resolve("a")
                    + ", parameters: {weight: 1}}\n  - {model: " + dir.resolve("b") + ", parameters: {weight: 1}}\n");
            Path out = small.resolve("merged");
            TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--quiet");
            assertEquals(2, r.exitCode(), r.stderr());
            assertTrue(r.stderr().contains("No space left on device") || r.stderr().contains("disk full"), r.stderr());
            assertFalse(Files.exists(out), "no output folder");
            try (Stream<Path> s = Files.list(small)) {
                assertEquals(0, s.count(), "the temporary folder is removed too");
            }
        } finally {
            new ProcessBuilder("umount", small.toString()).start().waitFor();
        }
    }
}
