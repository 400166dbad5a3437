package org.mergeengine.djl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.TinyModels;
import org.mergeengine.formats.DType;
import org.mergeengine.methods.Chunk;
import org.mergeengine.methods.KernelContext;
import org.mergeengine.methods.KernelRunner;
import org.mergeengine.methods.MergeMethod;
import org.mergeengine.methods.MethodRegistry;
import org.mergeengine.methods.TensorKernel;

/** The DJL kernels (PyTorch on the CPU, offline) against the Java kernels, and merges through DJL lanes. */
class DjlParityTest {
    @TempDir
    Path dir;

    static final int N = 100_003;

    private static KernelContext context(MergeMethod m, int inputs, int base, Map<String, Double> globals, Map<String, double[]> perModel) {
        return KernelRunner.context(m, "model.layers.0.mlp.up_proj.weight", new long[] {N}, inputs, base, globals, perModel, 42);
    }

    /** Runs a kernel the way the engine does, in chunks of {@code chunk}; with {@code views}, the compute pass sees views at an offset. */
    private static float[] run(TensorKernel k, int passes, float[][] in, int chunk, boolean views) {
        for (int p = 0; p < passes; p++) {
            for (int s = 0; s < N; s += chunk) k.reduce(p, slice(in, s, Math.min(chunk, N - s)));
            k.endPass(p);
        }
        float[] out = new float[N];
        for (int s = 0; s < N; s += chunk) {
            int len = Math.min(chunk, N - s);
            // A chunk of twice the length, viewed at an offset: kernels must honour Chunk.offset.
            Chunk wide = slice(in, Math.max(0, s - len), Math.min(N - Math.max(0, s - len), 2 * len));
            Chunk c = views ? wide.view((int) (s - wide.start), len) : slice(in, s, len);
            float[] o = new float[len];
            k.compute(c, o);
            System.arraycopy(o, 0, out, s, len);
        }
        return out;
    }

    private static Chunk slice(float[][] in, int s, int len) {
        float[][] part = new float[in.length][];
        for (int i = 0; i < in.length; i++) part[i] = Arrays.copyOfRange(in[i], s, s + len);
        return new Chunk(s, len, part);
    }

    private static float[][] inputs(int count, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[][] in = new float[count][N];
        for (int j = 0; j < N; j++) {
            float base = (float) r.nextGaussian();
            for (int i = 0; i < count; i++) in[i][j] = base + (i == 0 ? 0 : (float) (0.05 * r.nextGaussian()));
        }
        return in;
    }

    private void assertParity(String method, int inputs, int base, Map<String, Double> globals, Map<String, double[]> perModel) {
        MergeMethod m = MethodRegistry.get(method, "merge_method");
        float[][] in = inputs(inputs, method.hashCode());
        try (NDManager root = NDManager.newBaseManager(ai.djl.Device.cpu(), "PyTorch")) {
            KernelContext ctx = context(m, inputs, base, globals, perModel);
            TensorKernel djl = DjlKernels.of(m, ctx, m.kernel(ctx), root).orElseThrow();
            int passes = m.traits(ctx).reductionPasses();
            // The engine hands Java kernels chunks at offset 0; the DJL kernel is also tried on views at an offset.
            float[] expected = run(m.kernel(ctx), passes, in, 8192, false);
            float[] actual = run(djl, passes, in, 8192, true);
            int differ = 0;
            for (int j = 0; j < N; j++) {
                float tol = 1e-6f * Math.max(1f, Math.abs(expected[j]));
                assertTrue(Math.abs(expected[j] - actual[j]) <= tol, method + " element " + j + ": " + expected[j] + " vs " + actual[j]);
                if (Float.floatToRawIntBits(expected[j]) != Float.floatToRawIntBits(actual[j])) differ++;
            }
            // The DJL kernels do the Java kernels' float32 operations in the same order; on the CPU they round alike.
            assertEquals(0, differ, method + ": elements whose bits differ");
        }
    }

    @Test
    void linearMatchesTheJavaKernel() {
        assertParity("linear", 3, -1, Map.of(), Map.of("weight", new double[] {0.5, 0.3, 0.4}));
        assertParity("linear", 2, -1, Map.of("normalize", 0.0), Map.of("weight", new double[] {0.7, -0.2}));
    }

    @Test
    void taskArithmeticMatchesTheJavaKernel() {
        assertParity("task_arithmetic", 3, 0, Map.of("lambda", 0.8), Map.of("weight", new double[] {1, 0.6, 0.9}));
        assertParity("task_arithmetic", 3, 1, Map.of("normalize", 1.0), Map.of("weight", new double[] {0.3, 1, 0.5}));
    }

    @Test
    void slerpMatchesTheJavaKernel() {
        assertParity("slerp", 2, 0, Map.of("t", 0.3), Map.of());
        assertParity("slerp", 2, 1, Map.of("t", 0.75), Map.of());
    }

    @Test
    void methodsWithoutADjlKernelAreLeftToJava() {
        MergeMethod ties = MethodRegistry.get("ties", "merge_method");
        try (NDManager root = NDManager.newBaseManager(ai.djl.Device.cpu(), "PyTorch")) {
            KernelContext ctx = context(ties, 3, 0, Map.of(), Map.of("density", new double[] {1, 0.5, 0.5}));
            assertTrue(DjlKernels.of(ties, ctx, ties.kernel(ctx), root).isEmpty());
        }
    }

    @Test
    void mergesThroughDjlLanesWriteTheBytesOfJavaLanes() throws Exception {
        TinyModels.write(dir, DType.BF16, 2);
        String[] configs = {
            "merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 0.3}\n  - model: ft1\n    parameters: {weight: 0.7}\n",
            "merge_method: task_arithmetic\nbase_model: base\nparameters: {lambda: 0.9}\nmodels:\n  - model: ft1\n    parameters: {weight: 0.6}\n"
                + "  - model: ft2\n    parameters: {weight: 0.5}\n",
            "merge_method: slerp\nbase_model: base\nparameters: {t: 0.4}\nmodels:\n  - model: ft1\n",
            "merge_method: ties\nbase_model: base\nmodels:\n  - model: ft1\n    parameters: {weight: 0.6, density: 0.5}\n  - model: ft2\n"
                + "    parameters: {weight: 0.5, density: 0.7}\n",
        };
        for (int i = 0; i < configs.length; i++) {
            Path cfg = Files.writeString(dir.resolve("c" + i + ".yaml"), configs[i]);
            TestSupport.Result java = TestSupport.cli(cfg.toString(), dir.resolve("java" + i).toString(), "--quiet", "--workers", "2");
            TestSupport.Result djl = TestSupport.cli(cfg.toString(), dir.resolve("djl" + i).toString(), "--quiet", "--workers", "2", "--backend", "djl");
            assertEquals(0, java.exitCode(), java.stderr());
            assertEquals(0, djl.exitCode(), djl.stderr());
            assertArrayEquals(Files.readAllBytes(dir.resolve("java" + i).resolve("model.safetensors")),
                    Files.readAllBytes(dir.resolve("djl" + i).resolve("model.safetensors")), configs[i]);
        }
    }

    @Test
    void cudaWithoutAGpuSaysSo() throws Exception {
        TinyModels.write(dir, DType.BF16, 1);
        Path cfg = Files.writeString(dir.resolve("c.yaml"), "merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 1}\n"
                + "  - model: ft1\n    parameters: {weight: 1}\n");
        TestSupport.Result r = TestSupport.cli(cfg.toString(), dir.resolve("out").toString(), "--cuda");
        assertEquals(2, r.exitCode(), r.stderr());
        assertTrue(r.stderr().contains("sees no CUDA device"), r.stderr());
        assertTrue(!Files.exists(dir.resolve("out")));
    }
}
