package org.mergeengine.djl;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import java.nio.FloatBuffer;
import java.util.Optional;
import java.util.Set;
import org.mergeengine.methods.Chunk;
import org.mergeengine.methods.KernelContext;
import org.mergeengine.methods.KernelTraits;
import org.mergeengine.methods.MergeMethod;
import org.mergeengine.methods.Slerp;
import org.mergeengine.methods.TensorKernel;

/**
 * The methods the DJL backend computes on its device, each the same sequence of float32 operations
 * as its Java kernel (so the results agree to the bit where the device rounds like the JVM):
 * <pre>
 *   linear:           R = w_0 X_0 + w_1 X_1 + ...             (w normalized by their sum when normalize)
 *   task_arithmetic:  R = B + lambda * ((sum_i w_i (X_i - B)) * inv),  inv = 1/sum w (normalize) or 1
 *   slerp:            R = c0 V0 + c1 V1                        (c0, c1 from the Java kernel's norm pass)
 * </pre>
 * Whole-tensor statistics (slerp's norms) stay in the Java kernel, and the chunking follows the
 * method's {@link KernelTraits}; only float32 crosses into DJL (bfloat16 arrays abort the JVM in
 * DJL 0.36).
 */
public final class DjlKernels {
    private DjlKernels() {}

    /** The methods with a DJL kernel; every other method runs its Java kernel on a DJL lane. */
    public static final Set<String> METHODS = Set.of("linear", "task_arithmetic", "slerp");

    interface Formula {
        NDArray apply(NDArray[] x);
    }

    /**
     * The DJL kernel for a tensor around {@code java}, the method's own kernel for it (which keeps
     * the reductions), or empty when the method (or this use of it) has none.
     */
    public static Optional<TensorKernel> of(MergeMethod method, KernelContext ctx, TensorKernel java, NDManager root) {
        KernelTraits traits = method.traits(ctx);
        int n = ctx.inputCount();
        switch (method.name()) {
            case "linear": {
                if (traits.identity()) return Optional.empty();
                float[] w = new float[n];
                double sum = 0;
                for (int i = 0; i < n; i++) sum += ctx.model("weight", i);
                double div = ctx.flag("normalize") ? sum : 1.0;
                for (int i = 0; i < n; i++) w[i] = (float) (ctx.model("weight", i) / div);
                return Optional.of(new Kernel(java, root, null, x -> {
                    NDArray r = x[0].mul(w[0]);
                    for (int i = 1; i < n; i++) r = r.add(x[i].mul(w[i]));
                    return r;
                }));
            }
            case "task_arithmetic": {
                if (!ctx.hasBase() || traits.identity()) return Optional.empty();
                int b = ctx.baseIndex();
                int[] o = ctx.others();
                float[] f = new float[o.length];
                double wsum = 0;
                for (int k = 0; k < o.length; k++) {
                    double w = ctx.model("weight", o[k]);
                    f[k] = (float) w;
                    wsum += w;
                }
                float inv = ctx.flag("normalize") ? (float) (1.0 / (Math.abs(wsum) < 1e-8 ? 1.0 : wsum)) : 1f;
                float lambda = (float) ctx.global("lambda");
                return Optional.of(new Kernel(java, root, null, x -> {
                    NDArray sum = x[o[0]].sub(x[b]).mul(f[0]);
                    for (int k = 1; k < o.length; k++) sum = sum.add(x[o[k]].sub(x[b]).mul(f[k]));
                    return x[b].add(sum.mul(inv).mul(lambda));
                }));
            }
            case "slerp": {
                if (!(java instanceof Slerp.Kernel s)) return Optional.empty();
                boolean[] used = new boolean[n];
                used[s.base()] = true;
                used[s.other()] = true;
                return Optional.of(new Kernel(java, root, used, x -> x[s.base()].mul(s.c0()).add(x[s.other()].mul(s.c1()))));
            }
            default:
                return Optional.empty();
        }
    }

    /** Reductions from the Java kernel (chunking from the method's traits); the output of each chunk computed by DJL. */
    static final class Kernel implements TensorKernel {
        private final TensorKernel java;
        private final NDManager root;
        private final boolean[] used;
        private final Formula formula;

        Kernel(TensorKernel java, NDManager root, boolean[] used, Formula formula) {
            this.java = java;
            this.root = root;
            this.used = used;
            this.formula = formula;
        }

        @Override public void reduce(int pass, Chunk chunk) { java.reduce(pass, chunk); }
        @Override public void endPass(int pass) { java.endPass(pass); }

        @Override
        public void compute(Chunk c, float[] out) {
            try (NDManager m = root.newSubManager()) {
                NDArray[] x = new NDArray[c.in.length];
                for (int i = 0; i < x.length; i++) {
                    if (used != null && !used[i]) continue;
                    x[i] = m.create(FloatBuffer.wrap(c.in[i], c.offset, c.length), new Shape(c.length), DataType.FLOAT32);
                }
                NDArray r = formula.apply(x);
                r.toByteBuffer().asFloatBuffer().get(out, 0, c.length);
            }
        }
    }
}
