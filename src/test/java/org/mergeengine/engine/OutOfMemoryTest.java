package org.mergeengine.engine;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.MergeException;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.formats.DType;
import org.mergeengine.methods.Chunk;
import org.mergeengine.methods.TensorKernel;
import org.mergeengine.plan.LocalModelResolver;
import org.mergeengine.plan.MergePlan;
import org.mergeengine.plan.PlanOptions;
import org.mergeengine.plan.PlannedTensor;
import org.mergeengine.plan.Planner;
import org.mergeengine.tools.SyntheticModel;

/**
 * A tensor that does not fit in the heap ends the merge with an error that says what to do, not a
 * JVM stopped by its actor system with a stack trace.
 */
class OutOfMemoryTest {
    @TempDir
    Path dir;

    /** A CPU lane whose kernel runs out of memory on the embedding, in its reduction pass or its output pass. */
    private static Device failingOn(String tensorPart, boolean inReduce) {
        return new Device() {
            @Override public String name() { return "cpu-oom"; }

            @Override
            public TensorKernel kernel(PlannedTensor t) {
                TensorKernel k = t.method().kernel(t.context());
                if (!t.name().contains(tensorPart)) return k;
                return new TensorKernel() {
                    @Override public void compute(Chunk c, float[] out) {
                        if (!inReduce) throw new OutOfMemoryError("Java heap space");
                        k.compute(c, out);
                    }
                    @Override public void reduce(int pass, Chunk c) {
                        if (inReduce) throw new OutOfMemoryError("Java heap space");
                        k.reduce(pass, c);
                    }
                    @Override public void endPass(int pass) { k.endPass(pass); }
                };
            }
        };
    }

    @Test
    void runningOutOfHeapIsAnErrorThatSaysWhatToDo() throws Exception {
        SyntheticModel.Spec spec = new SyntheticModel.Spec(32, 64, 2, 96, 4, 2, false);
        SyntheticModel.write(dir.resolve("a"), spec, DType.BF16, 1, 1, 0, 0);
        SyntheticModel.write(dir.resolve("b"), spec, DType.BF16, 1, 2, 0.3, 0);
        try (LocalModelResolver r = new LocalModelResolver(List.of(dir)); MergeEngine engine = new MergeEngine()) {
            // linear takes the tiled output pass; ties has reduction passes and keeps tensors in memory
            for (String cfg : List.of("merge_method: linear\nmodels:\n  - {model: a, parameters: {weight: 1}}\n  - {model: b, parameters: {weight: 1}}\n",
                    "merge_method: ties\nbase_model: a\nmodels:\n  - {model: b, parameters: {weight: 1, density: 0.5}}\n")) {
                MergePlan plan = Planner.plan(ConfigParser.parse(cfg), r, PlanOptions.defaults());
                for (boolean inReduce : new boolean[] {false, true}) {
                    if (inReduce && plan.method().name().equals("linear")) continue;
                    Path out = dir.resolve("out-" + plan.method().name() + "-" + inReduce);
                    MergeException e = assertThrows(MergeException.class,
                            () -> engine.run(plan, out, MergeOptions.defaults().withDevices(List.of(failingOn("embed", inReduce)))));
                    assertEquals(MergeException.Kind.USER, e.kind());
                    assertTrue(e.getMessage().contains("out of memory merging model.embed_tokens.weight"), e.getMessage());
                    assertTrue(e.getMessage().contains("JAVA_OPTS=-Xmx"), e.getMessage());
                    assertFalse(Files.exists(out), "no output folder after a failed merge");
                }
            }
            // the engine's actor system survived: the next merge runs
            MergePlan plan = Planner.plan(ConfigParser.parse("merge_method: linear\nmodels:\n  - {model: a, parameters: {weight: 1}}\n  - {model: b, parameters: {weight: 1}}\n"),
                    r, PlanOptions.defaults());
            assertDoesNotThrow(() -> engine.run(plan, dir.resolve("after"), MergeOptions.defaults()));
            assertTrue(Files.exists(dir.resolve("after/model.safetensors")));
        }
    }
}
