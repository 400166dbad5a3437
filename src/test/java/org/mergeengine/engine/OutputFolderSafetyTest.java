package org.mergeengine.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.MergeException;
import org.mergeengine.TestSupport;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.formats.DType;
import org.mergeengine.plan.LocalModelResolver;
import org.mergeengine.plan.MergePlan;
import org.mergeengine.plan.PlanOptions;
import org.mergeengine.plan.Planner;
import org.mergeengine.tools.SyntheticModel;

/** The output folder: never deletes what merge-engine did not write, one run at a time, no leftovers. */
class OutputFolderSafetyTest {
    @TempDir
    Path dir;

    private Path config() throws Exception {
        SyntheticModel.write(dir.resolve("a"), SyntheticModel.Spec.tiny(), DType.BF16, 1, 1, 0, 0);
        SyntheticModel.write(dir.resolve("b"), SyntheticModel.Spec.tiny(), DType.BF16, 1, 2, 0.1, 0);
        return Files.writeString(dir.resolve("c.yaml"), "merge_method: linear\nmodels:\n  - {model: " + dir.resolve("a")
                + ", parameters: {weight: 0.5}}\n  - {model: " + dir.resolve("b") + ", parameters: {weight: 0.5}}\n");
    }

    private static List<Path> named(Path folder, String prefix) throws Exception {
        try (Stream<Path> s = Files.list(folder)) {
            return s.filter(p -> p.getFileName().toString().startsWith(prefix)).toList();
        }
    }

    @Test
    void aFolderMadeWhileTheMergeRunsIsRefusedNeverDeleted() throws Exception {
        Path cfg = config();
        Path out = dir.resolve("out");
        AtomicBoolean made = new AtomicBoolean();
        try (LocalModelResolver r = new LocalModelResolver(List.of(dir)); MergeEngine engine = new MergeEngine()) {
            MergePlan plan = Planner.plan(ConfigParser.parseFile(cfg), r, PlanOptions.defaults());
            MergeOptions opts = MergeOptions.defaults().withWorkers(1).withProgress(p -> {
                if (made.getAndSet(true)) return;
                try {
                    Files.createDirectories(out);
                    Files.writeString(out.resolve("precious.txt"), "data");
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            MergeException e = assertThrows(MergeException.class, () -> engine.run(plan, out, opts));
            assertEquals(MergeException.Kind.USER, e.kind());
            assertTrue(e.getMessage().contains(out.toString()) && e.getMessage().contains("not an earlier merge-engine output"), e.getMessage());
            assertEquals("data", Files.readString(out.resolve("precious.txt")));
            assertEquals(List.of(out.resolve("precious.txt")), named(out, ""));
            Path finished = OutputFolder.tempPath(out, OutputFolder.planHash(plan));
            assertTrue(e.getMessage().contains(finished.toString()), e.getMessage());
            assertTrue(Files.exists(finished.resolve(OutputFolder.MARKER)), "the finished merge is kept where the message says");
        }
    }

    @Test
    void anEarlierOutputIsStillReplaced() throws Exception {
        Path cfg = config();
        Path out = dir.resolve("out");
        assertEquals(0, TestSupport.cli(cfg.toString(), out.toString(), "--quiet").exitCode());
        Files.writeString(out.resolve("stale-extra.txt"), "from the first run's folder");
        TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--quiet");
        assertEquals(0, r.exitCode(), r.stderr());
        assertFalse(Files.exists(out.resolve("stale-extra.txt")));
        assertEquals(List.of(), named(dir, ".out."), "no lock file, temporary or replaced folder is left beside the output");
    }

    private Process holdLock(Path out) throws Exception {
        String java = ProcessHandle.current().info().command().orElse("java");
        Process p = new ProcessBuilder(java, "-Xmx64m", "-cp", System.getProperty("java.class.path"), LockHolder.class.getName(), out.toString())
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        BufferedReader in = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.US_ASCII));
        assertEquals("locked", in.readLine());
        return p;
    }

    @Test
    void aSecondRunInAnotherProcessExitsTwoNamingTheFolderAndTheHolder() throws Exception {
        Path cfg = config();
        Path out = dir.resolve("out");
        Process holder = holdLock(out);
        try {
            TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--quiet");
            assertEquals(2, r.exitCode(), r.stderr());
            assertTrue(r.stderr().contains(out.toString()) && r.stderr().contains("process " + holder.pid()), r.stderr());
            assertFalse(Files.exists(out));
        } finally {
            holder.getOutputStream().close();
            assertEquals(0, holder.waitFor());
        }
        TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--quiet");
        assertEquals(0, r.exitCode(), "once the holder is gone the folder is free: " + r.stderr());
    }

    @Test
    void aSecondMergeInThisProcessIsRefusedWhileTheFirstHoldsTheFolder() throws Exception {
        Path cfg = config();
        Path out = dir.resolve("out");
        try (OutputLock first = OutputLock.acquire(out)) {
            TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--quiet");
            assertEquals(2, r.exitCode(), r.stderr());
            assertTrue(r.stderr().contains(out.toString()) && r.stderr().contains("process " + ProcessHandle.current().pid() + ", this one"), r.stderr());
            try (LocalModelResolver res = new LocalModelResolver(List.of(dir)); MergeEngine engine = new MergeEngine()) {
                MergePlan plan = Planner.plan(ConfigParser.parseFile(cfg), res, PlanOptions.defaults());
                MergeException e = assertThrows(MergeException.class, () -> engine.run(plan, out, MergeOptions.defaults().withWorkers(1)));
                assertTrue(e.getMessage().contains("being written by another merge"), e.getMessage());
            }
        }
    }

    @Test
    void aTemporaryFolderThatAnotherLiveRunHoldsIsNeverDeleted() throws Exception {
        Path cfg = config();
        Path out = dir.resolve("out");
        Path tmp;
        try (LocalModelResolver res = new LocalModelResolver(List.of(dir))) {
            tmp = OutputFolder.tempPath(out, OutputFolder.planHash(Planner.plan(ConfigParser.parseFile(cfg), res, PlanOptions.defaults())));
        }
        Files.createDirectories(tmp);
        Files.writeString(tmp.resolve("model-00001-of-00001.safetensors"), "being written by the other run"); // cannot be resumed
        Path other = Files.createDirectories(dir.resolve(".out.partial-0123456789abcdef"));
        Process holder = holdLock(out);
        try {
            TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--quiet");
            assertEquals(2, r.exitCode(), r.stderr());
            assertEquals("being written by the other run", Files.readString(tmp.resolve("model-00001-of-00001.safetensors")));
            assertTrue(Files.isDirectory(other));
        } finally {
            holder.getOutputStream().close();
            holder.waitFor();
        }
    }

    @Test
    void staleTemporaryFoldersAreListedByADryRunAndRemovedByARun() throws Exception {
        Path cfg = config();
        Path out = dir.resolve("out");
        Path stale = Files.createDirectories(dir.resolve(".out.partial-0123456789abcdef"));
        Files.writeString(stale.resolve("model.safetensors"), "orphaned by a crash of another plan");
        Path unrelated = Files.createDirectories(dir.resolve(".other.partial-0123456789abcdef"));
        TestSupport.Result dry = TestSupport.cli(cfg.toString(), out.toString(), "--dry-run");
        assertEquals(0, dry.exitCode(), dry.stderr());
        assertTrue(dry.stdout().contains("stale temporary: " + stale), dry.stdout());
        assertTrue(Files.exists(stale), "a dry run removes nothing");
        TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--quiet");
        assertEquals(0, r.exitCode(), r.stderr());
        assertFalse(Files.exists(stale));
        assertTrue(Files.exists(unrelated), "temporary folders of other outputs are not touched");
    }

    @Test
    void dotDotThroughAMissingFolderIsResolvedFirst() throws Exception {
        Path cfg = config();
        Path out = dir.resolve("missing").resolve("..").resolve("out");
        TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--quiet");
        assertEquals(0, r.exitCode(), r.stderr());
        assertTrue(Files.exists(dir.resolve("out").resolve(OutputFolder.MARKER)));
        assertFalse(Files.exists(dir.resolve("missing")), "no folder is made for a path step that '..' takes back");
        try (Stream<Path> s = Files.walk(dir)) {
            assertEquals(List.of(), s.filter(p -> p.getFileName().toString().contains(".partial-")).toList());
        }
    }
}
