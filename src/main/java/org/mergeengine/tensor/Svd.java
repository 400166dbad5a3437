package org.mergeengine.tensor;

import java.util.Arrays;


/**
 * Thin singular value decompositions of a dense row-major matrix, in double precision.
 * {@link #exact} orthogonalises columns by one-sided Jacobi rotations (all singular values, accurate,
 * O(min² · max) per sweep: for matrices up to about a thousand wide). {@link #randomized} finds the
 * top-k subspace with a Gaussian range finder and power iterations, then decomposes the small
 * projected matrix exactly (for large matrices and small ranks).
 */
public final class Svd {
    /** a = U · diag(s) · V^T with U [rows, n], V [cols, n], s descending, n = number kept. */
    public record Result(double[] u, double[] s, double[] v, int rows, int cols, int n) {}

    private Svd() {}

    public static Result exact(float[] a, int rows, int cols) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return exact(d, rows, cols);
    }

    public static Result exact(double[] a, int rows, int cols) {
        if (rows < cols) {
            Result t = exact(transpose(a, rows, cols), cols, rows);
            return new Result(t.v, t.s, t.u, rows, cols, t.n);
        }
        int m = rows, n = cols;
        double[] w = a.clone();                 // columns become U·diag(s)
        double[] v = identity(n);
        for (int sweep = 0; sweep < 60; sweep++) {
            double off = 0;
            for (int p = 0; p < n - 1; p++) {
                for (int q = p + 1; q < n; q++) {
                    double alpha = 0, beta = 0, gamma = 0;
                    for (int i = 0; i < m; i++) {
                        double x = w[i * n + p], y = w[i * n + q];
                        alpha += x * x;
                        beta += y * y;
                        gamma += x * y;
                    }
                    if (gamma == 0 || Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
                    off = Math.max(off, Math.abs(gamma) / Math.sqrt(alpha * beta));
                    double zeta = (beta - alpha) / (2 * gamma);
                    double t = Math.signum(zeta) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
                    if (zeta == 0) t = 1;
                    double c = 1 / Math.sqrt(1 + t * t), s = c * t;
                    for (int i = 0; i < m; i++) {
                        double x = w[i * n + p], y = w[i * n + q];
                        w[i * n + p] = c * x - s * y;
                        w[i * n + q] = s * x + c * y;
                    }
                    for (int i = 0; i < n; i++) {
                        double x = v[i * n + p], y = v[i * n + q];
                        v[i * n + p] = c * x - s * y;
                        v[i * n + q] = s * x + c * y;
                    }
                }
            }
            if (off < 1e-13) break;
        }
        double[] s = new double[n];
        for (int j = 0; j < n; j++) {
            double sum = 0;
            for (int i = 0; i < m; i++) sum += w[i * n + j] * w[i * n + j];
            s[j] = Math.sqrt(sum);
        }
        Integer[] order = new Integer[n];
        for (int j = 0; j < n; j++) order[j] = j;
        Arrays.sort(order, (x, y) -> Double.compare(s[y], s[x]));
        double[] u = new double[m * n], vs = new double[n * n], ss = new double[n];
        for (int k = 0; k < n; k++) {
            int j = order[k];
            ss[k] = s[j];
            for (int i = 0; i < m; i++) u[i * n + k] = s[j] > 0 ? w[i * n + j] / s[j] : 0;
            for (int i = 0; i < n; i++) vs[i * n + k] = v[i * n + j];
        }
        return new Result(u, ss, vs, rows, cols, n);
    }

    /** The top {@code k} singular triplets, from a randomized range finder with {@code power} iterations. */
    public static Result randomized(float[] a, int rows, int cols, int k, int oversample, int power, long seed) {
        int l = Math.min(Math.min(rows, cols), k + oversample);
        long key = CounterRandom.streamKey(seed, "svd", 0);
        double[] omega = new double[cols * l];
        for (int i = 0; i < omega.length; i++) omega[i] = CounterRandom.uniform(key, i) - 0.5;
        double[] y = mul(a, rows, cols, omega, l);              // [rows, l]
        orthonormalize(y, rows, l);
        for (int it = 0; it < power; it++) {
            double[] z = mulT(a, rows, cols, y, l);               // A^T y: [cols, l]
            orthonormalize(z, cols, l);
            y = mul(a, rows, cols, z, l);
            orthonormalize(y, rows, l);
        }
        double[] bt = mulT(a, rows, cols, y, l);                  // B^T = A^T Q: [cols, l]
        Result small = exact(bt, cols, l);                        // B^T = Vb S Ub^T
        int n = Math.min(k, small.n);
        double[] u = new double[rows * n], v = new double[cols * n], s = new double[n];
        for (int j = 0; j < n; j++) {
            s[j] = small.s[j];
            for (int i = 0; i < cols; i++) v[i * n + j] = small.u[i * small.n + j];
            for (int i = 0; i < rows; i++) {
                double sum = 0;
                for (int t = 0; t < l; t++) sum += y[i * l + t] * small.v[t * small.n + j];
                u[i * n + j] = sum;
            }
        }
        return new Result(u, s, v, rows, cols, n);
    }

    static double[] mul(float[] a, int rows, int cols, double[] b, int l) {
        double[] out = new double[rows * l];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                double x = a[i * cols + j];
                if (x == 0) continue;
                for (int t = 0; t < l; t++) out[i * l + t] += x * b[j * l + t];
            }
        }
        return out;
    }

    static double[] mulT(float[] a, int rows, int cols, double[] y, int l) {
        double[] out = new double[cols * l];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                double x = a[i * cols + j];
                if (x == 0) continue;
                for (int t = 0; t < l; t++) out[j * l + t] += x * y[i * l + t];
            }
        }
        return out;
    }

    /** Modified Gram-Schmidt on the columns of a [rows, l] matrix (twice, for stability). */
    static void orthonormalize(double[] m, int rows, int l) {
        for (int pass = 0; pass < 2; pass++) {
            for (int j = 0; j < l; j++) {
                for (int p = 0; p < j; p++) {
                    double dot = 0;
                    for (int i = 0; i < rows; i++) dot += m[i * l + j] * m[i * l + p];
                    for (int i = 0; i < rows; i++) m[i * l + j] -= dot * m[i * l + p];
                }
                double norm = 0;
                for (int i = 0; i < rows; i++) norm += m[i * l + j] * m[i * l + j];
                norm = Math.sqrt(norm);
                for (int i = 0; i < rows; i++) m[i * l + j] = norm > 1e-300 ? m[i * l + j] / norm : 0;
            }
        }
    }

    static double[] transpose(double[] a, int rows, int cols) {
        double[] t = new double[a.length];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
        return t;
    }

    static double[] identity(int n) {
        double[] v = new double[n * n];
        for (int i = 0; i < n; i++) v[i * n + i] = 1;
        return v;
    }
}
