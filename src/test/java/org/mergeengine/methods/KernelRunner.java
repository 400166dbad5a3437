package org.mergeengine.methods;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Runs a method's kernel on in-memory tensors the way the engine does: reduction passes, then compute, chunk by chunk. */
public final class KernelRunner {
    private final MergeMethod method;
    private long[] shape;
    private final List<float[]> inputs = new ArrayList<>();
    private int base = -1;
    private final Map<String, Double> globals = new LinkedHashMap<>();
    private final Map<String, double[]> perModel = new LinkedHashMap<>();
    private long seed = 42;
    private String name = "model.layers.0.mlp.up_proj.weight";

    KernelRunner(String method) {
        this.method = MethodRegistry.get(method, "merge_method");
    }

    KernelRunner shape(long... s) { shape = s; return this; }
    KernelRunner input(float... v) { inputs.add(v); return this; }
    KernelRunner base(float... v) { base = inputs.size(); inputs.add(v); return this; }
    KernelRunner global(String n, double v) { globals.put(n, v); return this; }
    KernelRunner model(String n, double... v) { perModel.put(n, v); return this; }
    KernelRunner seed(long s) { seed = s; return this; }
    KernelRunner name(String n) { name = n; return this; }

    KernelContext context() {
        if (shape == null) shape = new long[] {inputs.get(0).length};
        return context(method, name, shape, inputs.size(), base, globals, perModel, seed);
    }

    /** A context with the given parameters and every other parameter at its default. */
    public static KernelContext context(MergeMethod method, String name, long[] shape, int inputs, int base,
                                        Map<String, Double> globals, Map<String, double[]> perModel, long seed) {
        Map<String, Double> g = new LinkedHashMap<>();
        Map<String, double[]> pm = new LinkedHashMap<>();
        for (ParamSpec p : method.parameters()) {
            if (p.perModel()) {
                double[] v = perModel.get(p.name());
                if (v == null) {
                    v = new double[inputs];
                    Arrays.fill(v, p.defaultValue());
                }
                pm.put(p.name(), v);
            } else {
                g.put(p.name(), globals.getOrDefault(p.name(), p.defaultValue()));
            }
        }
        List<String> labels = new ArrayList<>();
        for (int i = 0; i < inputs; i++) labels.add("m" + i);
        return new KernelContext(method.name(), name, shape, labels, base, g, pm, seed);
    }

    /** A fresh kernel for this runner's inputs and parameters. */
    TensorKernel kernel() {
        KernelContext ctx = context();
        method.checkParameters(ctx);
        return method.kernel(ctx);
    }

    /** The traits the method gives its kernel for this runner's inputs and parameters. */
    KernelTraits traits() {
        return method.traits(context());
    }

    List<float[]> inputs() {
        return inputs;
    }

    float[] run() {
        return run(Integer.MAX_VALUE);
    }

    /** Runs with chunks of at most {@code chunk} elements (rounded to the kernel's alignment). */
    float[] run(int chunk) {
        KernelContext ctx = context();
        method.checkParameters(ctx);
        TensorKernel k = method.kernel(ctx);
        KernelTraits t = method.traits(ctx);
        int n = inputs.get(0).length;
        int c = t.wholeTensor() ? n : (int) Math.max(t.alignment(), Math.min(n, chunk) / t.alignment() * t.alignment());
        for (int p = 0; p < t.reductionPasses(); p++) {
            for (int s = 0; s < n; s += c) k.reduce(p, chunk(s, Math.min(c, n - s)));
            k.endPass(p);
        }
        float[] out = new float[n];
        for (int s = 0; s < n; s += c) {
            Chunk ch = chunk(s, Math.min(c, n - s));
            float[] o = new float[ch.length];
            k.compute(ch, o);
            System.arraycopy(o, 0, out, s, ch.length);
        }
        return out;
    }

    private Chunk chunk(int s, int len) {
        float[][] in = new float[inputs.size()][];
        for (int i = 0; i < in.length; i++) in[i] = Arrays.copyOfRange(inputs.get(i), s, s + len);
        return new Chunk(s, len, in);
    }
}
