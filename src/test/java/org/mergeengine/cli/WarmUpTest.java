package org.mergeengine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.mergeengine.TestSupport;

/** {@code warm-up} (run by the launcher to build its class-data archive) merges and cleans up after itself. */
class WarmUpTest {
    @Test
    void warmUpMergesQuietlyAndLeavesNoFolderBehind() throws Exception {
        Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
        Set<Path> before = warmUpFolders(tmp);
        TestSupport.Result r = TestSupport.cli("warm-up");
        assertEquals(0, r.exitCode(), r.stderr());
        assertEquals("", r.stdout().trim());
        assertEquals(before, warmUpFolders(tmp), "the generated models and merges are removed");
    }

    private static Set<Path> warmUpFolders(Path tmp) throws Exception {
        try (Stream<Path> s = Files.list(tmp)) {
            return s.filter(p -> p.getFileName().toString().startsWith("merge-engine-warm-up")).collect(Collectors.toSet());
        }
    }
}
