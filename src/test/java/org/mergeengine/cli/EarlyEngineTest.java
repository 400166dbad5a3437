package org.mergeengine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.engine.MergeEngine;

/** The actor system a plain merge starts before its options are read, and what becomes of it when the run stops early. */
class EarlyEngineTest {
    @TempDir
    Path dir;

    @Test
    void onlyAPlainMergeStartsOne() {
        for (List<String> args : List.of(List.<String>of(), List.of("--help"), List.of("cfg.yaml", "-V"), List.of("cfg.yaml", "out", "--dry-run"),
                List.of("cfg.yaml", "--cluster", "pekko://merge-engine@127.0.0.1:2551"), List.of("cfg.yaml", "--cluster=pekko://merge-engine@127.0.0.1:2551"))) {
            assertNull(EarlyEngine.forArgs(args), args.toString());
        }
    }

    @Test
    void closedWhenNotTakenAndLeftRunningWhenTaken() {
        EarlyEngine unused = EarlyEngine.forArgs(List.of("cfg.yaml", "out", "--quiet"));
        assertNotNull(unused);
        unused.closeUnlessTaken();
        assertTrue(unused.take().join().system().whenTerminated().isCompleted(), "an engine nobody took is shut down");

        EarlyEngine used = EarlyEngine.forArgs(List.of("cfg.yaml"));
        MergeEngine engine = used.take().join();
        used.closeUnlessTaken();
        assertFalse(engine.system().whenTerminated().isCompleted(), "a taken engine is the taker's to close");
        engine.close();
    }

    static Set<Thread> actorThreads() {
        return Thread.getAllStackTraces().keySet().stream().filter(t -> t.isAlive() && t.getName().startsWith("merge-engine-")).collect(Collectors.toSet());
    }

    /**
     * Threads of actor systems started since {@code before} that are still alive after a grace
     * period. A leaked system may still be starting when the run returns: its threads are looked
     * for during the first seconds too.
     */
    static Set<Thread> leftOver(Set<Thread> before) throws InterruptedException {
        Thread.sleep(3000);
        Set<Thread> now = actorThreads();
        for (int i = 0; i < 100; i++) {
            now.removeAll(before);
            now.removeIf(t -> !t.isAlive());
            if (now.isEmpty()) break;
            Thread.sleep(100);
            now = actorThreads();
        }
        now.removeAll(before);
        return now;
    }

    @Test
    void aRunStoppedByABadOptionOrConfigLeavesNoActorSystemBehind() throws Exception {
        Path cfg = Files.writeString(dir.resolve("bad.yaml"), "merge_method: linear\nmodels: []\n");
        Set<Thread> before = actorThreads();
        TestSupport.Result badOption = TestSupport.cli(cfg.toString(), dir.resolve("out").toString(), "--no-such-option");
        assertEquals(2, badOption.exitCode(), badOption.stderr());
        TestSupport.Result badConfig = TestSupport.cli(cfg.toString(), dir.resolve("out").toString(), "--quiet");
        assertEquals(2, badConfig.exitCode(), badConfig.stderr());
        assertTrue(badConfig.stderr().contains("models"), badConfig.stderr());
        assertEquals(Set.of(), leftOver(before), "actor-system threads still running");
        assertTrue(Files.notExists(dir.resolve("out")));
    }
}
