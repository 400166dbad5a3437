package org.mergeengine.jmh;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.mergeengine.formats.DType;
import org.mergeengine.methods.Chunk;
import org.mergeengine.methods.KernelContext;
import org.mergeengine.methods.MergeMethod;
import org.mergeengine.methods.MethodRegistry;
import org.mergeengine.methods.ParamSpec;
import org.mergeengine.methods.TensorKernel;
import org.mergeengine.tensor.Convert;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/** Per-element costs of the conversions and of each method's kernel on one 1M-element chunk of two models and a base. */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(1)
public class KernelBenchmarks {
    static final int N = 1 << 20;

    @Param({"linear", "task_arithmetic", "ties", "dare_ties", "breadcrumbs", "slerp", "model_stock", "nearswap"})
    public String method;

    float[] base, a, b, out;
    ByteBuffer bf16, encoded;
    MergeMethod m;
    KernelContext ctx;

    @Setup
    public void setup() {
        java.util.Random r = new java.util.Random(1);
        base = new float[N];
        a = new float[N];
        b = new float[N];
        out = new float[N];
        for (int i = 0; i < N; i++) {
            base[i] = (float) r.nextGaussian();
            a[i] = base[i] + 0.01f * (float) r.nextGaussian();
            b[i] = base[i] + 0.01f * (float) r.nextGaussian();
        }
        // Weights are bf16 values, as in the models merged: their differences repeat often, so
        // magnitude selection meets many equal values at its cut (as it does on real models).
        for (float[] v : new float[][] {base, a, b}) {
            ByteBuffer t = ByteBuffer.allocate(2 * N).order(ByteOrder.LITTLE_ENDIAN);
            Convert.encode(DType.BF16, v, 0, N, t);
            t.flip();
            Convert.decode(DType.BF16, t, v, 0, N);
        }
        bf16 = ByteBuffer.allocateDirect(2 * N).order(ByteOrder.LITTLE_ENDIAN);
        Convert.encode(DType.BF16, a, 0, N, bf16);
        bf16.flip();
        encoded = ByteBuffer.allocateDirect(2 * N).order(ByteOrder.LITTLE_ENDIAN);
        m = MethodRegistry.get(method, "merge_method");
        Map<String, Double> g = new LinkedHashMap<>();
        Map<String, double[]> pm = new LinkedHashMap<>();
        for (ParamSpec p : m.parameters()) {
            if (p.perModel()) pm.put(p.name(), new double[] {p.name().equals("density") ? 0.5 : 1.0, 1.0, Double.NaN});
            else g.put(p.name(), p.name().equals("t") ? 0.3 : p.defaultValue());
        }
        ctx = new KernelContext(method, "model.layers.0.mlp.up_proj.weight", new long[] {1024, 1024}, List.of("a", "b", "base"), 2, g, pm, 42, false);
    }

    @Benchmark
    public float[] decodeBf16() {
        Convert.decode(DType.BF16, bf16, out, 0, N);
        return out;
    }

    @Benchmark
    public ByteBuffer encodeBf16() {
        encoded.clear();
        Convert.encode(DType.BF16, a, 0, N, encoded);
        return encoded;
    }

    /** The output pass's conversions for elementwise kernels over bf16: a tile of 8,192 elements split by parity. */
    @Benchmark
    public float[] decodeBf16SplitTiles() {
        for (int s = 0; s < N; s += 8192) {
            bf16.position(2 * s);
            Convert.decodeBf16Split(bf16, out, 8192);
        }
        bf16.position(0);
        return out;
    }

    @Benchmark
    public ByteBuffer encodeBf16SplitTiles() {
        encoded.clear();
        for (int s = 0; s < N; s += 8192) {
            System.arraycopy(a, s, tile, 0, 8192);
            Convert.encodeBf16Split(tile, 8192, encoded);
        }
        return encoded;
    }

    /** The same tiles converted in element order, as kernels that are not elementwise get them. */
    @Benchmark
    public float[] decodeBf16Tiles() {
        for (int s = 0; s < N; s += 8192) {
            bf16.position(2 * s);
            Convert.decode(DType.BF16, bf16, out, 0, 8192);
        }
        bf16.position(0);
        return out;
    }

    @Benchmark
    public ByteBuffer encodeBf16Tiles() {
        encoded.clear();
        for (int s = 0; s < N; s += 8192) {
            System.arraycopy(a, s, tile, 0, 8192);
            Convert.encode(DType.BF16, tile, 0, 8192, encoded);
        }
        return encoded;
    }

    final float[] tile = new float[8192];

    float[] ka, kb, kbase;

    /** Kernels may rewrite a chunk's arrays in place (task vectors): each call gets fresh copies. */
    @Setup(Level.Invocation)
    public void freshInputs() {
        if (ka == null) {
            ka = new float[N];
            kb = new float[N];
            kbase = new float[N];
        }
        System.arraycopy(a, 0, ka, 0, N);
        System.arraycopy(b, 0, kb, 0, N);
        System.arraycopy(base, 0, kbase, 0, N);
    }

    /** One tensor of 1M elements through the method: its reduction passes and the compute pass. */
    @Benchmark
    public float[] kernel() {
        TensorKernel k = m.kernel(ctx);
        Chunk c = new Chunk(0, N, new float[][] {ka, kb, kbase});
        for (int p = 0; p < k.reductionPasses(); p++) {
            k.reduce(p, c);
            k.endPass(p);
        }
        k.compute(c, out);
        return out;
    }
}
