package org.mergeengine.methods;

import java.util.List;

/**
 * karcher: the Riemannian (Fréchet) mean of the inputs on the unit sphere, uniform weights over
 * every input (a base is just one more input), scaled by the mean norm. u_i = X_i / |X_i| for
 * inputs with |X_i| > tol; start from normalise(sum α_i u_i); repeat up to max_iter:
 * T = sum α_i θ_i / sin θ_i (u_i - cos θ_i u) over θ_i = acos(u·u_i) >= tol, stop when |T| < tol,
 * u = cos|T| u + sin|T| T/|T|. Result (sum over all inputs of α_i |X_i|) · u.
 */
public final class Karcher implements MergeMethod {
    @Override public String name() { return "karcher"; }
    @Override public BaseUse baseUse() { return BaseUse.ORDINARY; }
    @Override public ResultDType resultDType() { return ResultDType.PROMOTE; }
    @Override public String description() { return "Karcher (Fréchet) mean on the sphere of all models"; }

    @Override
    public List<ParamSpec> parameters() {
        return List.of(ParamSpec.global("max_iter", 10), ParamSpec.global("tol", 1e-5));
    }

    @Override
    public TensorKernel kernel(KernelContext ctx) {
        int n = ctx.inputCount();
        if (n == 1) return Copy.of(0);
        int maxIter = (int) ctx.global("max_iter");
        double tol = ctx.global("tol");
        return new TensorKernel() {
            @Override public boolean wholeTensor() { return true; }

            @Override
            public void compute(Chunk c, float[] out) {
                int len = c.length;
                double[] norm = new double[n];
                double meanNorm = 0;
                for (int i = 0; i < n; i++) {
                    double s = 0;
                    for (float v : c.in[i]) s += v * (double) v;
                    norm[i] = Math.sqrt(s);
                    meanNorm += norm[i] / n;
                }
                int live = 0;
                for (double v : norm) if (v > tol) live++;
                if (live == 0) {
                    java.util.Arrays.fill(out, 0, len, 0f);
                    return;
                }
                double alpha = 1.0 / live;
                double[] u = new double[len];
                int first = -1;
                for (int i = 0; i < n; i++) {
                    if (norm[i] <= tol) continue;
                    if (first < 0) first = i;
                    for (int j = 0; j < len; j++) u[j] += alpha * c.in[i][j] / norm[i];
                }
                if (!normalize(u, tol)) for (int j = 0; j < len; j++) u[j] = c.in[first][j] / norm[first];
                double[] t = new double[len];
                for (int it = 0; it < maxIter; it++) {
                    java.util.Arrays.fill(t, 0);
                    for (int i = 0; i < n; i++) {
                        if (norm[i] <= tol) continue;
                        double dot = 0;
                        for (int j = 0; j < len; j++) dot += u[j] * c.in[i][j] / norm[i];
                        double cos = Math.max(-1, Math.min(1, dot)), theta = Math.acos(cos);
                        if (theta < tol) continue;
                        double f = alpha * theta / Math.sin(theta);
                        for (int j = 0; j < len; j++) t[j] += f * (c.in[i][j] / norm[i] - cos * u[j]);
                    }
                    double tn = 0;
                    for (double v : t) tn += v * v;
                    tn = Math.sqrt(tn);
                    if (tn < tol) break;
                    double ct = Math.cos(tn), st = Math.sin(tn) / tn;
                    for (int j = 0; j < len; j++) u[j] = ct * u[j] + st * t[j];
                    normalize(u, tol);
                }
                for (int j = 0; j < len; j++) out[j] = (float) (meanNorm * u[j]);
            }
        };
    }

    static boolean normalize(double[] v, double tol) {
        double s = 0;
        for (double x : v) s += x * x;
        s = Math.sqrt(s);
        if (s <= tol) return false;
        for (int j = 0; j < v.length; j++) v[j] /= s;
        return true;
    }
}
