package org.mergeengine.methods;

import java.util.Arrays;
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
    public KernelTraits traits(KernelContext ctx) {
        return ctx.inputCount() == 1 ? Copy.traits(0) : KernelTraits.streamed().withPasses(1);
    }

    @Override
    public TensorKernel kernel(KernelContext ctx) {
        int n = ctx.inputCount();
        if (n == 1) return Copy.of(0);
        return new Kernel(n, (int) ctx.global("max_iter"), ctx.global("tol"));
    }

    /**
     * Every point the iteration visits is a combination of the unit inputs: the start is their
     * normalised mean, and each step adds a multiple of T, itself a combination of the u_i and u.
     * So u is kept as its coefficients c (u = sum c_i u_i), and every product the iteration needs
     * comes from the inputs' Gram matrix (u·u_i = sum_k c_k G_ki, |T|² = tᵀ G t), which one streaming
     * pass gathers. The output pass then applies the final coefficients to the inputs. Memory is a
     * few chunks instead of every input's whole tensor, and the inputs are read twice, not the
     * tensor held while iterating. The result differs from iterating on the vectors themselves only
     * by rounding (the products are sums over the whole tensor either way, in double).
     */
    private static final class Kernel implements TensorKernel {
        private final int n, maxIter;
        private final double tol;
        /** Sums of X_i·X_k, then the unit inputs' Gram matrix. */
        private final double[][] g;
        /** The output's coefficient of each input: out = sum coef_i X_i. */
        private final double[] coef;

        Kernel(int n, int maxIter, double tol) {
            this.n = n;
            this.maxIter = maxIter;
            this.tol = tol;
            this.g = new double[n][n];
            this.coef = new double[n];
        }

        @Override
        public void reduce(int pass, Chunk c) {
            int off = c.offset, end = c.offset + c.length;
            for (int i = 0; i < n; i++) {
                float[] x = c.in[i];
                for (int k = i; k < n; k++) {
                    float[] y = c.in[k];
                    double s = g[i][k];
                    for (int j = off; j < end; j++) s += x[j] * (double) y[j];
                    g[i][k] = s;
                }
            }
        }

        @Override
        public void endPass(int pass) {
            double[] norm = new double[n];
            double meanNorm = 0;
            int live = 0, first = -1;
            for (int i = 0; i < n; i++) {
                norm[i] = Math.sqrt(g[i][i]);
                meanNorm += norm[i] / n;
                if (norm[i] > tol) {
                    live++;
                    if (first < 0) first = i;
                }
            }
            if (live == 0) return; // all coefficients stay 0: the output is zeros
            for (int i = 0; i < n; i++) {
                for (int k = i; k < n; k++) {
                    double v = norm[i] > tol && norm[k] > tol ? g[i][k] / (norm[i] * norm[k]) : 0;
                    g[i][k] = v;
                    g[k][i] = v;
                }
            }
            double alpha = 1.0 / live;
            double[] u = new double[n];
            for (int i = 0; i < n; i++) if (norm[i] > tol) u[i] = alpha;
            if (!normalize(u)) {
                Arrays.fill(u, 0);
                u[first] = 1;
            }
            double[] t = new double[n];
            for (int it = 0; it < maxIter; it++) {
                Arrays.fill(t, 0);
                for (int i = 0; i < n; i++) {
                    if (norm[i] <= tol) continue;
                    double dot = 0;
                    for (int k = 0; k < n; k++) dot += u[k] * g[k][i];
                    double cos = Math.max(-1, Math.min(1, dot)), theta = Math.acos(cos);
                    if (theta < tol) continue;
                    double f = alpha * theta / Math.sin(theta);
                    t[i] += f;
                    for (int k = 0; k < n; k++) t[k] -= f * cos * u[k];
                }
                double tn = Math.sqrt(quadratic(t));
                if (tn < tol) break;
                double ct = Math.cos(tn), st = Math.sin(tn) / tn;
                for (int k = 0; k < n; k++) u[k] = ct * u[k] + st * t[k];
                normalize(u);
            }
            for (int i = 0; i < n; i++) coef[i] = norm[i] > tol ? meanNorm * u[i] / norm[i] : 0;
        }

        /** |sum c_i u_i|², never below 0 through rounding. */
        private double quadratic(double[] c) {
            double s = 0;
            for (int i = 0; i < n; i++) for (int k = 0; k < n; k++) s += c[i] * g[i][k] * c[k];
            return Math.max(0, s);
        }

        private boolean normalize(double[] c) {
            double s = Math.sqrt(quadratic(c));
            if (s <= tol) return false;
            for (int i = 0; i < n; i++) c[i] /= s;
            return true;
        }

        @Override
        public void compute(Chunk c, float[] out) {
            int off = c.offset, len = c.length;
            for (int j = 0; j < len; j++) {
                double s = 0;
                for (int i = 0; i < n; i++) s += coef[i] * c.in[i][off + j];
                out[j] = (float) s;
            }
        }
    }
}
