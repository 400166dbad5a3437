package org.mergeengine.methods;

import java.util.Arrays;
import java.util.List;
import org.mergeengine.MergeException;

/**
 * multislerp: barycentric interpolation on the sphere. With x_i the models (minus the base when one
 * is given), n_i = |x_i|, u_i = x_i / (n_i + eps), weights w normalised to sum 1 (normalize_weights):
 * m = sum w_i u_i, m̂ = m / |m|, T = sum w_i (u_i - (u_i·m̂) m̂), l = |T| + eps,
 * p = m̂ cos l + T sin l / l, R = p · sum w_i n_i (+ base). With two inputs and |m| < eps it falls
 * back to w_1 x_1 + w_2 x_2.
 */
public final class MultiSlerp implements MergeMethod {
    @Override public String name() { return "multislerp"; }
    @Override public BaseUse baseUse() { return BaseUse.OPTIONAL; }
    @Override public ResultDType resultDType() { return ResultDType.PROMOTE; }
    @Override public String description() { return "spherical barycentric interpolation of any number of models"; }

    @Override
    public List<ParamSpec> parameters() {
        return List.of(ParamSpec.requiredPerModel("weight"), ParamSpec.global("normalize_weights", 1), ParamSpec.global("eps", 1e-8));
    }

    @Override
    public KernelTraits traits(KernelContext ctx) {
        int[] o = ctx.others();
        return o.length == 1 && !ctx.hasBase() ? Copy.traits(o[0]) : KernelTraits.streamed().withPasses(2);
    }

    @Override
    public TensorKernel kernel(KernelContext ctx) {
        int[] o = ctx.others();
        if (o.length == 1 && !ctx.hasBase()) return Copy.of(o[0]);
        int base = ctx.baseIndex(), n = o.length;
        double eps = ctx.global("eps");
        double[] w = new double[n];
        double ws = 0;
        for (int i = 0; i < n; i++) ws += w[i] = ctx.model("weight", o[i]);
        if (ctx.flag("normalize_weights")) for (int i = 0; i < n; i++) w[i] /= ws;
        return new Kernel(ctx.tensorName(), o, base, w, eps);
    }

    /**
     * Streams the tensor in two reduction passes (the norms |x_i|, then |m|) and an output pass.
     *
     * <p>The tangent sum of the definition vanishes: T = sum_i w_i (u_i - (u_i·m̂) m̂) = m - (m·m̂) m̂
     * = m - |m| m̂ = 0, whatever the weights. So l = eps and p = m̂ cos(eps), and the two passes that
     * would gather the dots u_i·m̂ and |T| only measured rounding noise (of the order of 1e-16
     * relative), which is left out here: the result is the definition's, without that noise.
     */
    private static final class Kernel implements TensorKernel {
        private final String tensor;
        private final int[] o;
        private final int base, n;
        private final double[] w, norm, f;
        private final double eps;
        private double mn;
        private boolean fallback;
        private double scale;
        /** The chunk's x_i (model minus base, float32), and m over it. */
        private float[][] x = new float[0][];
        private double[] acc = new double[0];

        Kernel(String tensor, int[] o, int base, double[] w, double eps) {
            this.tensor = tensor;
            this.o = o;
            this.base = base;
            this.n = o.length;
            this.w = w;
            this.eps = eps;
            this.norm = new double[n];
            this.f = new double[n];
        }

        private void load(Chunk c) {
            int len = c.length, off = c.offset;
            if (x.length != n || x[0].length < len) {
                x = new float[n][len];
                acc = new double[len];
            }
            for (int i = 0; i < n; i++) {
                float[] v = c.in[o[i]], xi = x[i];
                if (base < 0) System.arraycopy(v, off, xi, 0, len);
                else {
                    float[] b = c.in[base];
                    for (int j = 0; j < len; j++) xi[j] = v[off + j] - b[off + j];
                }
            }
        }

        /** acc[j] = m_j = sum_i w_i u_ij, before it is normalised. */
        private void m(int len) {
            Arrays.fill(acc, 0, len, 0);
            for (int i = 0; i < n; i++) {
                float[] xi = x[i];
                double fi = f[i];
                for (int j = 0; j < len; j++) acc[j] += fi * xi[j];
            }
        }

        @Override
        public void reduce(int pass, Chunk c) {
            int len = c.length;
            load(c);
            if (pass == 0) {
                for (int i = 0; i < n; i++) {
                    float[] xi = x[i];
                    double s = norm[i];
                    for (int j = 0; j < len; j++) s += xi[j] * (double) xi[j];
                    norm[i] = s; // squared until the pass ends
                }
                return;
            }
            m(len);
            double s = mn;
            for (int j = 0; j < len; j++) s += acc[j] * acc[j];
            mn = s;
        }

        @Override
        public void endPass(int pass) {
            if (pass == 0) {
                for (int i = 0; i < n; i++) {
                    norm[i] = Math.sqrt(norm[i]);
                    f[i] = w[i] / (norm[i] + eps);
                }
                return;
            }
            mn = Math.sqrt(mn);
            fallback = mn < eps;
            if (fallback && n != 2) {
                throw new MergeException(MergeException.Kind.USER, "multislerp: the weighted sum of the inputs of tensor " + tensor
                        + " is zero (antipodal models?); change the weights");
            }
            double s = 0;
            for (int i = 0; i < n; i++) s += w[i] * norm[i];
            scale = s * Math.cos(eps); // p = m̂ cos l with l = |T| + eps = eps
        }

        @Override
        public void compute(Chunk c, float[] out) {
            int len = c.length;
            load(c);
            if (fallback) {
                for (int j = 0; j < len; j++) out[j] = (float) (w[0] * x[0][j] + w[1] * x[1][j]);
            } else {
                m(len);
                for (int j = 0; j < len; j++) out[j] = (float) (acc[j] / mn * scale);
            }
            if (base >= 0) for (int j = 0; j < len; j++) out[j] += c.in[base][c.offset + j];
        }
    }
}
