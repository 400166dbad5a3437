package org.mergeengine.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.formats.DType;
import org.mergeengine.methods.CountingMethod;
import org.mergeengine.plan.LocalModelResolver;
import org.mergeengine.plan.MergePlan;
import org.mergeengine.plan.PlanOptions;
import org.mergeengine.plan.PlannedTensor;
import org.mergeengine.plan.Planner;
import org.mergeengine.tools.SyntheticModel;

/** Planning, splitting, sizing and admitting read a method's kernel traits; only the task that runs builds the kernel, once. */
class KernelBuiltOnceTest {
    @TempDir
    Path dir;

    @Test
    void eachTaskBuildsItsKernelExactlyOnce() throws Exception {
        SyntheticModel.Spec spec = new SyntheticModel.Spec(64, 128, 2, 512, 4, 2, false);
        SyntheticModel.write(dir.resolve("a"), spec, DType.BF16, 1, 1, 0, 0);
        SyntheticModel.write(dir.resolve("b"), spec, DType.BF16, 1, 2, 0.3, 0);
        String yaml = "merge_method: %s\nmodels:\n  - {model: a, parameters: {weight: 0.3}}\n  - {model: b, parameters: {weight: 0.7}}\n";
        try (AutoCloseable registered = CountingMethod.register(); LocalModelResolver r = new LocalModelResolver(List.of(dir));
             MergeEngine engine = new MergeEngine()) {
            MergePlan counted = Planner.plan(ConfigParser.parse(yaml.formatted(CountingMethod.NAME)), r, PlanOptions.defaults());
            for (PlannedTensor t : counted.tensors()) assertEquals(0, CountingMethod.built(t.name()), "planning built no kernel for " + t.name());

            MergeOptions opts = MergeOptions.defaults().withWorkers(4).withChunkElements(1024);
            Progress p = engine.run(counted, dir.resolve("counted"), opts);
            Sizing sizing = MergeEngine.sizing(opts);
            int tasks = 0, split = 0;
            for (PlannedTensor t : counted.tensors()) {
                int parts = sizing.parts(t, 4).size();
                assertEquals(parts, CountingMethod.built(t.name()), t.name() + ": one kernel per task, " + parts + " tasks");
                tasks += parts;
                if (parts > 1) split++;
            }
            assertTrue(split > 0, "some tensor was split into parts");
            assertEquals(tasks, p.tasksByLane().values().stream().mapToInt(Integer::intValue).sum());

            MergePlan plain = Planner.plan(ConfigParser.parse(yaml.formatted("linear")), r, PlanOptions.defaults());
            engine.run(plain, dir.resolve("linear"), opts);
            assertArrayEquals(Files.readAllBytes(dir.resolve("linear/model.safetensors")), Files.readAllBytes(dir.resolve("counted/model.safetensors")),
                    "counting changes nothing in the merge");
        }
    }
}
