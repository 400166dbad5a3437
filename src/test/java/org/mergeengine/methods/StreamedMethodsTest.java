package org.mergeengine.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * arcee_fusion, multislerp, sce, karcher and nuslerp (flattened or by columns) stream a tensor in passes instead of holding it whole.
 * Each is checked here against its definition computed plainly over the whole tensor at once (sums
 * in index order, a full sort for the quartiles, karcher's iteration on the vectors themselves), at
 * several chunkings: the same floats, bit for bit, except karcher, which iterates on coefficients
 * and so may differ by rounding.
 */
class StreamedMethodsTest {
    private static final int ROWS = 37, COLS = 53, N = ROWS * COLS;
    private static final int[] CHUNKS = {Integer.MAX_VALUE, 7 * COLS, 2 * COLS + 5, 1};

    private static float[] random(SplittableRandom r, double scale) {
        float[] v = new float[N];
        for (int j = 0; j < N; j++) v[j] = (float) (r.nextGaussian() * scale);
        return v;
    }

    /** bf16-like values: few distinct magnitudes, so many importances and variances tie. */
    private static float[] coarse(SplittableRandom r) {
        float[] v = new float[N];
        for (int j = 0; j < N; j++) v[j] = (r.nextInt(9) - 4) * 0.25f;
        return v;
    }

    // ---- arcee_fusion ----

    static float[] arceeReference(float[] a, float[] b, int row) {
        int len = a.length;
        float[] imp = new float[len];
        for (int r0 = 0; r0 < len; r0 += row) {
            double[] p = ArceeFusion.softmax(b, r0, row), q = ArceeFusion.softmax(a, r0, row);
            double kl = 0;
            for (int j = 0; j < row; j++) kl += p[j] * Math.log(p[j] / q[j]);
            for (int j = 0; j < row; j++) imp[r0 + j] = (float) (Math.abs(b[r0 + j] - a[r0 + j]) * kl);
        }
        float[] sorted = imp.clone();
        Arrays.sort(sorted);
        float thr = ArceeFusion.quantile(sorted, 0.5) + 1.5f * (ArceeFusion.quantile(sorted, 0.75) - ArceeFusion.quantile(sorted, 0.25));
        float[] out = new float[len];
        for (int j = 0; j < len; j++) out[j] = imp[j] >= thr ? b[j] : a[j];
        return out;
    }

    @Test
    void arceeFusionQuartilesAreExact() {
        SplittableRandom r = new SplittableRandom(3);
        for (int trial = 0; trial < 6; trial++) {
            float[] a = trial % 2 == 0 ? random(r, 1) : coarse(r), b = trial % 2 == 0 ? random(r, 1) : coarse(r);
            if (trial == 4) { // equal rows (KL 0, importance 0), infinities and NaNs in some rows
                System.arraycopy(a, 0, b, 0, 5 * COLS);
                b[6 * COLS + 3] = Float.POSITIVE_INFINITY;
                a[9 * COLS + 1] = Float.NaN;
            }
            float[] want = arceeReference(a, b, COLS);
            for (int chunk : CHUNKS) {
                float[] got = new KernelRunner("arcee_fusion").shape(ROWS, COLS).base(a).input(b).run(chunk);
                assertArrayEquals(want, got, "trial " + trial + ", chunks of " + chunk);
            }
            boolean both = false; // the threshold splits: some elements from each model
            for (int j = 0; j < N; j++) both |= want[j] != a[j];
            assertFalse(trial < 4 && !both, "trial " + trial + " takes something from the other model");
        }
    }

    @Test
    void orderKeysSortAsArraysSortDoes() {
        float[] v = {Float.NaN, -0f, 0f, Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY, Float.MIN_VALUE, -Float.MIN_VALUE, 1f, -1f,
                Float.intBitsToFloat(0xffc00001), Float.MAX_VALUE, -Float.MAX_VALUE, 3.5f};
        Integer[] idx = new Integer[v.length];
        for (int i = 0; i < v.length; i++) idx[i] = i;
        Arrays.sort(idx, (x, y) -> Integer.compareUnsigned(orderKey(v[x]), orderKey(v[y])));
        float[] byKey = new float[v.length];
        for (int i = 0; i < v.length; i++) byKey[i] = v[idx[i]];
        float[] sorted = v.clone();
        Arrays.sort(sorted);
        assertArrayEquals(sorted, byKey);
        for (float f : v) {
            if (f == f) assertEquals(Float.floatToRawIntBits(f), Float.floatToRawIntBits(fromOrderKey(orderKey(f))));
            else assertFalse(fromOrderKey(orderKey(f)) == fromOrderKey(orderKey(f)), "NaN comes back as NaN");
        }
    }

    private static int orderKey(float f) {
        return (int) invoke("orderKey", float.class, f);
    }

    private static float fromOrderKey(int k) {
        return (float) invoke("fromOrderKey", int.class, k);
    }

    private static Object invoke(String name, Class<?> type, Object arg) {
        try {
            Class<?> k = Class.forName(ArceeFusion.class.getName() + "$Kernel");
            var m = k.getDeclaredMethod(name, type);
            m.setAccessible(true);
            return m.invoke(null, arg);
        } catch (ReflectiveOperationException e) {
            throw new AssertionError(e);
        }
    }

    // ---- multislerp ----

    static float[] multislerpReference(float[][] in, float[] base, double[] w, double eps) {
        int n = in.length, len = in[0].length;
        float[][] x = new float[n][len];
        double[] norm = new double[n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < len; j++) x[i][j] = in[i][j] - (base != null ? base[j] : 0f);
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
        float[] out = new float[len];
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
        if (base != null) for (int j = 0; j < len; j++) out[j] += base[j];
        return out;
    }

    @Test
    void multislerpMatchesTheWholeTensorSums() {
        SplittableRandom r = new SplittableRandom(5);
        float[] base = random(r, 1), x = random(r, 1), y = random(r, 1), z = random(r, 1);
        double[] w = {0.5, 0.3, 0.2}; // normalize_weights leaves them as they are (sum 1)
        float[] want = multislerpReference(new float[][] {x, y, z}, base, w, 1e-8);
        float[] wantNoBase = multislerpReference(new float[][] {x, y, z}, null, w, 1e-8);
        for (int chunk : CHUNKS) {
            assertArrayEquals(want, new KernelRunner("multislerp").base(base).input(x).input(y).input(z)
                    .model("weight", Double.NaN, 0.5, 0.3, 0.2).run(chunk), "with a base, chunks of " + chunk);
            assertArrayEquals(wantNoBase, new KernelRunner("multislerp").input(x).input(y).input(z)
                    .model("weight", 0.5, 0.3, 0.2).run(chunk), "without a base, chunks of " + chunk);
        }
    }

    // ---- sce ----

    static float[] sceReference(float[] b, float[][] x, double topk) {
        int len = b.length, n = x.length;
        float[][] t = new float[n][len];
        for (int i = 0; i < n; i++) for (int j = 0; j < len; j++) t[i][j] = x[i][j] - b[j];
        if (topk < 1) {
            float[] var = new float[len];
            long nonzero = 0;
            for (int j = 0; j < len; j++) {
                double m = 0, s = 0;
                for (float[] v : t) m += v[j];
                m /= n;
                for (float[] v : t) s += (v[j] - m) * (v[j] - m);
                var[j] = (float) (s / n);
                if (var[j] != 0) nonzero++;
            }
            long k = topk <= 0 ? 0 : (long) Math.floor(nonzero * topk);
            // keep the k largest variances, equal ones by lower index
            Integer[] order = new Integer[len];
            for (int j = 0; j < len; j++) order[j] = j;
            Arrays.sort(order, (p, q) -> var[p] != var[q] ? Float.compare(var[q], var[p]) : Integer.compare(p, q));
            boolean[] keep = new boolean[len];
            for (int i = 0; i < k; i++) keep[order[i]] = true;
            for (int j = 0; j < len; j++) if (!keep[j]) for (float[] v : t) v[j] = 0;
        }
        double[] omega = new double[n];
        double total = 0;
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (float v : t[i]) s += v * (double) v;
            total += omega[i] = s / len;
        }
        for (int i = 0; i < n; i++) omega[i] = Math.abs(total) < 1e-6 ? 1.0 / n : omega[i] / total;
        float[] out = new float[len];
        for (int j = 0; j < len; j++) {
            float s = 0;
            for (int i = 0; i < n; i++) s += t[i][j];
            double num = 0, den = 0;
            for (int i = 0; i < n; i++) {
                float v = t[i][j];
                if (s >= 0 ? v > 0 : v < 0) {
                    num += omega[i] * v;
                    den += omega[i];
                }
            }
            out[j] = (float) (b[j] + num / Math.max(den, 1e-6));
        }
        return out;
    }

    @Test
    void sceMatchesTheWholeTensorSelectionAndSums() {
        SplittableRandom r = new SplittableRandom(11);
        for (double topk : new double[] {1.0, 0.5, 0.1, 0}) {
            for (boolean ties : new boolean[] {false, true}) {
                float[] b = ties ? coarse(r) : random(r, 1), x = ties ? coarse(r) : random(r, 1), y = ties ? coarse(r) : random(r, 1);
                float[] want = sceReference(b, new float[][] {x, y}, topk);
                for (int chunk : CHUNKS) {
                    float[] got = new KernelRunner("sce").base(b).input(x).input(y).global("select_topk", topk).run(chunk);
                    assertArrayEquals(want, got, "select_topk " + topk + (ties ? ", many ties" : "") + ", chunks of " + chunk);
                }
            }
        }
    }
    // ---- karcher ----

    /** The iteration on the unit vectors themselves, in double, as the definition states it. */
    static float[] karcherReference(float[][] x, int maxIter, double tol) {
        int n = x.length, len = x[0].length;
        double[] norm = new double[n];
        double meanNorm = 0;
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (float v : x[i]) s += v * (double) v;
            norm[i] = Math.sqrt(s);
            meanNorm += norm[i] / n;
        }
        int live = 0;
        for (double v : norm) if (v > tol) live++;
        float[] out = new float[len];
        if (live == 0) return out;
        double alpha = 1.0 / live;
        double[] u = new double[len];
        int first = -1;
        for (int i = 0; i < n; i++) {
            if (norm[i] <= tol) continue;
            if (first < 0) first = i;
            for (int j = 0; j < len; j++) u[j] += alpha * x[i][j] / norm[i];
        }
        if (!normalize(u, tol)) for (int j = 0; j < len; j++) u[j] = x[first][j] / norm[first];
        double[] t = new double[len];
        for (int it = 0; it < maxIter; it++) {
            Arrays.fill(t, 0);
            for (int i = 0; i < n; i++) {
                if (norm[i] <= tol) continue;
                double dot = 0;
                for (int j = 0; j < len; j++) dot += u[j] * x[i][j] / norm[i];
                double cos = Math.max(-1, Math.min(1, dot)), theta = Math.acos(cos);
                if (theta < tol) continue;
                double f = alpha * theta / Math.sin(theta);
                for (int j = 0; j < len; j++) t[j] += f * (x[i][j] / norm[i] - cos * u[j]);
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
        return out;
    }

    private static boolean normalize(double[] v, double tol) {
        double s = 0;
        for (double x : v) s += x * x;
        s = Math.sqrt(s);
        if (s <= tol) return false;
        for (int j = 0; j < v.length; j++) v[j] /= s;
        return true;
    }

    @Test
    void karcherOnCoefficientsMatchesTheIterationOnVectors() {
        SplittableRandom r = new SplittableRandom(13);
        float[] x = random(r, 1), y = random(r, 2), z = random(r, 0.5);
        float[] near = x.clone(); // almost the same direction: the iteration stops early
        for (int j = 0; j < N; j++) near[j] += (float) (r.nextGaussian() * 1e-3);
        float[] zero = new float[N];
        float[][][] cases = {{x, y}, {x, y, z}, {x, near}, {x, zero, y}, {zero, zero}};
        for (float[][] in : cases) {
            for (int maxIter : new int[] {10, 1}) {
                float[] want = karcherReference(in, maxIter, 1e-5);
                for (int chunk : CHUNKS) {
                    KernelRunner k = new KernelRunner("karcher").global("max_iter", maxIter);
                    for (float[] v : in) k.input(v);
                    float[] got = k.run(chunk);
                    for (int j = 0; j < N; j++) {
                        assertEquals(want[j], got[j], 2e-6 * Math.max(1, Math.abs(want[j])),
                                in.length + " inputs, max_iter " + maxIter + ", chunks of " + chunk + ", element " + j);
                    }
                }
            }
        }
    }
    // ---- nuslerp ----

    /** Slerp of a and b over the elements start, start+stride, ... (count of them), as the definition states it. */
    static void nuslerpVector(float[] a, float[] b, double t, int start, int stride, int count, float[] out) {
        double na = 0, nb = 0, dot = 0;
        for (int k = 0, j = start; k < count; k++, j += stride) {
            na += a[j] * (double) a[j];
            nb += b[j] * (double) b[j];
            dot += a[j] * (double) b[j];
        }
        double cos = Math.max(-1, Math.min(1, dot / (Math.max(Math.sqrt(na), 1e-7) * Math.max(Math.sqrt(nb), 1e-7))));
        double theta = Math.acos(cos), s = Math.sin(theta);
        float ca = (float) (Math.abs(s) < 1e-8 ? 1 - t : Math.sin((1 - t) * theta) / s);
        float cb = (float) (Math.abs(s) < 1e-8 ? t : Math.sin(t * theta) / s);
        for (int k = 0, j = start; k < count; k++, j += stride) out[j] = ca * a[j] + cb * b[j];
    }

    @Test
    void nuslerpFlatAndColumnWiseMatchTheWholeTensor() {
        SplittableRandom r = new SplittableRandom(17);
        float[] base = random(r, 1), x = random(r, 1), y = random(r, 1);
        float[] a = new float[N], b = new float[N];
        for (int j = 0; j < N; j++) {
            a[j] = x[j] - base[j];
            b[j] = y[j] - base[j];
        }
        double t = 0.4 / (0.6 + 0.4);
        for (String mode : new String[] {"flat", "columns", "rows"}) {
            float[] want = new float[N];
            if (mode.equals("flat")) nuslerpVector(a, b, t, 0, 1, N, want);
            else if (mode.equals("columns")) for (int col = 0; col < COLS; col++) nuslerpVector(a, b, t, col, COLS, ROWS, want);
            else for (int row = 0; row < ROWS; row++) nuslerpVector(a, b, t, row * COLS, 1, COLS, want);
            for (int j = 0; j < N; j++) want[j] += base[j];
            for (int chunk : CHUNKS) {
                float[] got = new KernelRunner("nuslerp").shape(ROWS, COLS).base(base).input(x).input(y).model("weight", Double.NaN, 0.6, 0.4)
                        .global("nuslerp_flatten", mode.equals("flat") ? 1 : 0).global("nuslerp_row_wise", mode.equals("columns") ? 1 : 0).run(chunk);
                assertArrayEquals(want, got, mode + ", chunks of " + chunk);
            }
        }
    }
}
