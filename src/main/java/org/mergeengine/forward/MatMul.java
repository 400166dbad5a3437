package org.mergeengine.forward;

import java.util.concurrent.ForkJoinPool;
import java.util.stream.IntStream;

/**
 * Matrix products of activation rows with a transposed weight, split by blocks of output columns
 * across the lanes. Each output element sums its products in input order, so results do not depend
 * on the number of lanes.
 */
final class MatMul {
    /** Inputs per pass over a column block: the weight tile then stays in cache across row groups. */
    private static final int IN_BLOCK = 256;

    private MatMul() {}

    /** y[m] = x[m]·Wᵀ + b for every row m; returns new rows. */
    static float[][] apply(ForkJoinPool pool, float[][] x, Linear w) {
        int rows = x.length, out = w.out();
        float[][] y = new float[rows][out];
        if (w.bias() != null) for (float[] r : y) System.arraycopy(w.bias(), 0, r, 0, out);
        int lanes = pool.getParallelism();
        int cols = Math.max(16, Math.min(256, (out / (4 * lanes) + 15) / 16 * 16));
        int blocks = (out + cols - 1) / cols;
        if (lanes <= 1) {
            for (int bk = 0; bk < blocks; bk++) block(x, w, y, bk * cols, Math.min(out, (bk + 1) * cols));
        } else {
            // A parallel stream started inside the pool runs on the pool's threads (the lanes).
            pool.submit(() -> IntStream.range(0, blocks).parallel()
                    .forEach(bk -> block(x, w, y, bk * cols, Math.min(out, (bk + 1) * cols)))).join();
        }
        return y;
    }

    private static void block(float[][] x, Linear w, float[][] y, int o0, int o1) {
        float[] wt = w.wt();
        int in = w.in(), out = w.out(), rows = x.length;
        for (int i0 = 0; i0 < in; i0 += IN_BLOCK) {
            int i1 = Math.min(in, i0 + IN_BLOCK);
            int m = 0;
            for (; m + 4 <= rows; m += 4) {
                float[] x0 = x[m], x1 = x[m + 1], x2 = x[m + 2], x3 = x[m + 3];
                float[] y0 = y[m], y1 = y[m + 1], y2 = y[m + 2], y3 = y[m + 3];
                for (int i = i0; i < i1; i++) {
                    float a0 = x0[i], a1 = x1[i], a2 = x2[i], a3 = x3[i];
                    int base = i * out;
                    for (int o = o0; o < o1; o++) {
                        float v = wt[base + o];
                        y0[o] += a0 * v;
                        y1[o] += a1 * v;
                        y2[o] += a2 * v;
                        y3[o] += a3 * v;
                    }
                }
            }
            for (; m < rows; m++) {
                float[] xm = x[m], ym = y[m];
                for (int i = i0; i < i1; i++) {
                    float a = xm[i];
                    int base = i * out;
                    for (int o = o0; o < o1; o++) ym[o] += a * wt[base + o];
                }
            }
        }
    }
}
