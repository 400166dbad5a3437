package org.mergeengine.methods;

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
    public TensorKernel kernel(KernelContext ctx) {
        int[] o = ctx.others();
        if (o.length == 1 && !ctx.hasBase()) return Copy.of(o[0]);
        int base = ctx.baseIndex(), n = o.length;
        double eps = ctx.global("eps");
        double[] w = new double[n];
        double ws = 0;
        for (int i = 0; i < n; i++) ws += w[i] = ctx.model("weight", o[i]);
        if (ctx.flag("normalize_weights")) for (int i = 0; i < n; i++) w[i] /= ws;
        return new TensorKernel() {
            @Override public boolean wholeTensor() { return true; }

            @Override
            public void compute(Chunk c, float[] out) {
                int len = c.length;
                float[][] x = new float[n][len];
                double[] norm = new double[n];
                for (int i = 0; i < n; i++) {
                    for (int j = 0; j < len; j++) x[i][j] = c.in[o[i]][j] - (base >= 0 ? c.in[base][j] : 0f);
                    double s = 0;
                    for (int j = 0; j < len; j++) s += x[i][j] * (double) x[i][j];
                    norm[i] = Math.sqrt(s);
                }
                double[] m = new double[len];
                for (int i = 0; i < n; i++) {
                    double f = w[i] / (norm[i] + eps);
                    for (int j = 0; j < len; j++) m[j] += f * x[i][j];
                }
                double mn = 0;
                for (double v : m) mn += v * v;
                mn = Math.sqrt(mn);
                if (mn < eps) {
                    if (n != 2) {
                        throw new MergeException(MergeException.Kind.USER, "multislerp: the weighted sum of the inputs of tensor " + ctx.tensorName()
                                + " is zero (antipodal models?); change the weights");
                    }
                    for (int j = 0; j < len; j++) out[j] = (float) (w[0] * x[0][j] + w[1] * x[1][j]);
                } else {
                    for (int j = 0; j < len; j++) m[j] /= mn;
                    double[] tangent = new double[len];
                    for (int i = 0; i < n; i++) {
                        double inv = 1 / (norm[i] + eps), dot = 0;
                        for (int j = 0; j < len; j++) dot += x[i][j] * inv * m[j];
                        for (int j = 0; j < len; j++) tangent[j] += w[i] * (x[i][j] * inv - dot * m[j]);
                    }
                    double tl = 0;
                    for (double v : tangent) tl += v * v;
                    double l = Math.sqrt(tl) + eps, scale = 0;
                    for (int i = 0; i < n; i++) scale += w[i] * norm[i];
                    double cl = Math.cos(l), sl = Math.sin(l) / l;
                    for (int j = 0; j < len; j++) out[j] = (float) ((m[j] * cl + tangent[j] * sl) * scale);
                }
                if (base >= 0) for (int j = 0; j < len; j++) out[j] += c.in[base][j];
            }
        };
    }
}
