package org.mergeengine.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.stream.Materializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.formats.DType;
import org.mergeengine.plan.LocalModelResolver;
import org.mergeengine.plan.MergePlan;
import org.mergeengine.plan.PlanOptions;
import org.mergeengine.plan.Planner;
import org.mergeengine.tools.SyntheticModel;

/** Tasks run into a staged output by a runner (as cluster nodes do): the node's memory budget, and the bytes. */
class TaskRunnerTest {
    @TempDir
    Path dir;

    /** Runs every task of the plan at once through a runner with {@code budget} bytes; returns its peak of tasks running together. */
    private int runAll(MergePlan plan, Path out, long budget) throws Exception {
        try (MergeEngine engine = new MergeEngine()) {
            StagedOutput staged = StagedOutput.open(plan, out, engine.io());
            List<Task> tasks = staged.allTasks(new Sizing(MergeOptions.DEFAULT_CHUNK, 0), 1);
            TaskRunner runner = TaskRunner.attach(plan, staged.tempDir(), MergeOptions.DEFAULT_CHUNK, budget, 4, engine);
            Materializer mat = Materializer.createMaterializer(engine.system());
            List<CompletableFuture<Long>> crcs = new ArrayList<>();
            for (Task t : tasks) crcs.add(runner.run(t.tensor(), t.from(), t.to(), Device.cpu(0), mat).toCompletableFuture());
            for (int i = 0; i < tasks.size(); i++) {
                long crc = crcs.get(i).get(60, TimeUnit.SECONDS);
                assertTrue(staged.verify(tasks.get(i), crc), "part " + i + " reads back with the CRC its runner reported");
                staged.record(tasks.get(i), crc);
            }
            runner.close();
            staged.finish(MergeOptions.defaults());
            return runner.peakRunning();
        }
    }

    @Test
    void tasksWaitForTheNodesMemoryAndWriteTheBytesOfAMerge() throws Exception {
        SyntheticModel.Spec spec = new SyntheticModel.Spec(128, 256, 4, 2000, 4, 2, false);
        SyntheticModel.write(dir.resolve("a"), spec, DType.BF16, 1, 1, 0, 0);
        SyntheticModel.write(dir.resolve("b"), spec, DType.BF16, 1, 2, 0.3, 0);
        var cfg = ConfigParser.parse("merge_method: task_arithmetic\nbase_model: a\nmodels:\n  - {model: b, parameters: {weight: 0.7}}\n");
        try (LocalModelResolver r = new LocalModelResolver(List.of(dir)); MergeEngine engine = new MergeEngine()) {
            MergePlan plan = Planner.plan(cfg, r, PlanOptions.defaults());
            engine.run(plan, dir.resolve("reference"), MergeOptions.defaults().withWorkers(1));
            assertTrue(plan.tensors().size() > 10);

            int roomy = runAll(plan, dir.resolve("roomy"), 1L << 30);
            int tight = runAll(plan, dir.resolve("tight"), 1024); // less than any one task needs
            assertTrue(roomy > 1, "with room, tasks submitted together run together (peak " + roomy + ")");
            assertEquals(1, tight, "a budget smaller than one task runs one task at a time");
            for (String out : List.of("roomy", "tight")) {
                assertArrayEquals(Files.readAllBytes(dir.resolve("reference/model.safetensors")),
                        Files.readAllBytes(dir.resolve(out).resolve("model.safetensors")), out);
            }
        }
    }
}
