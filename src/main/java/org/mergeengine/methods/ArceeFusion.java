package org.mergeengine.methods;

import java.util.List;
import org.mergeengine.config.ConfigException;

/**
 * arcee_fusion: importance I = |b - a| · KL_row, KL_row = sum over the last dimension of
 * p log(p/q) with p = softmax(b) + 1e-8 and q = softmax(a) + 1e-8 (a the base, b the other model);
 * threshold thr = Q(0.5) + 1.5 (Q(0.75) - Q(0.25)) over all of I, Q(q) the element at
 * floor(q (n-1)) in ascending order; R = a + (b - a) where I >= thr.
 */
public final class ArceeFusion implements MergeMethod {
    @Override public String name() { return "arcee_fusion"; }
    @Override public List<ParamSpec> parameters() { return List.of(); }
    @Override public BaseUse baseUse() { return BaseUse.REQUIRED; }
    @Override public ResultDType resultDType() { return ResultDType.BASE; }
    @Override public String description() { return "Arcee Fusion: takes the other model's values where they matter most"; }

    @Override
    public void checkInputs(int others, boolean hasBase, String yamlPath) {
        if (!hasBase) throw new ConfigException(yamlPath.isEmpty() ? "base_model" : yamlPath, "arcee_fusion needs base_model");
        Linear.requireExactly("arcee_fusion", 1, others, yamlPath.isEmpty() ? "models" : yamlPath);
    }

    @Override
    public KernelTraits traits(KernelContext ctx) {
        return KernelTraits.streamed().withAlignment(ctx.rowLength()).withPasses(2);
    }

    @Override
    public TensorKernel kernel(KernelContext ctx) {
        return new Kernel(ctx.baseIndex(), ctx.others()[0], (int) ctx.rowLength(), ctx.numel());
    }

    /**
     * Streams the tensor in whole rows. The first pass computes each row's KL once (kept, a double
     * per row) and counts the importances' high 16 bits; the second counts the low 16 bits inside
     * the buckets that hold the three quartiles' ranks, which gives them exactly, as sorting all of
     * I would; the output pass compares. Sorting the whole tensor took most of this method's time,
     * and holding its inputs whole most of its memory.
     */
    private static final class Kernel implements TensorKernel {
        private static final double[] QUARTILES = {0.25, 0.5, 0.75};
        private final int ia, ib, row;
        private final long numel;
        /** Each row's KL, and the first pass's histogram: made at the first pass. */
        private double[] kl;
        private final long[] rank = new long[3];
        private final int[] bucket = new int[3];
        private final long[] below = new long[3];
        private final float[] quartile = new float[3];
        private int[] hist;
        private final int[][] low = new int[3][];
        private final boolean[] counts = new boolean[3];
        private float thr;
        /** A row's two softmaxes, reused: new arrays per row were garbage enough to grow the heap. */
        private double[] pRow, qRow;

        Kernel(int ia, int ib, int row, long numel) {
            this.ia = ia;
            this.ib = ib;
            this.row = row;
            this.numel = numel;
            for (int q = 0; q < 3; q++) rank[q] = (long) Math.floor(QUARTILES[q] * (numel - 1));
        }


        private float importance(float a, float b, double rowKl) {
            return (float) (Math.abs(b - a) * rowKl);
        }

        /** The float's place in Arrays.sort's order as an unsigned int: -0 before 0, every NaN last. */
        static int orderKey(float f) {
            if (f != f) return -1;
            int bits = Float.floatToRawIntBits(f);
            return bits < 0 ? ~bits : bits ^ 0x80000000;
        }

        static float fromOrderKey(int k) {
            if (k == -1) return Float.NaN;
            return Float.intBitsToFloat(k < 0 ? k ^ 0x80000000 : ~k);
        }

        @Override
        public void reduce(int pass, Chunk c) {
            if (kl == null) {
                kl = new double[(int) Math.max(1, numel / row)];
                hist = new int[1 << 16];
            }
            float[] a = c.in[ia], b = c.in[ib];
            int off = c.offset;
            for (int r0 = 0; r0 < c.length; r0 += row) {
                int r = (int) ((c.start + r0) / row);
                if (pass == 0) {
                    if (pRow == null) {
                        pRow = new double[row];
                        qRow = new double[row];
                    }
                    double[] p = softmax(b, off + r0, row, pRow), q = softmax(a, off + r0, row, qRow);
                    double sum = 0;
                    for (int j = 0; j < row; j++) sum += p[j] * Math.log(p[j] / q[j]);
                    kl[r] = sum;
                }
                double rowKl = kl[r];
                for (int j = off + r0; j < off + r0 + row; j++) {
                    int key = orderKey(importance(a[j], b[j], rowKl));
                    if (pass == 0) {
                        hist[key >>> 16]++;
                    } else {
                        for (int q = 0; q < 3; q++) if (counts[q] && key >>> 16 == bucket[q]) low[q][key & 0xffff]++;
                    }
                }
            }
        }

        @Override
        public void endPass(int pass) {
            if (hist == null && pass == 0) hist = new int[1 << 16]; // a tensor of no elements
            for (int q = 0; q < 3; q++) {
                if (pass == 0) {
                    long cum = 0;
                    int h = 0;
                    while (cum + hist[h] <= rank[q]) cum += hist[h++];
                    bucket[q] = h;
                    below[q] = cum;
                    // The ranks ascend, so quartiles that share a bucket are neighbours: one histogram for them.
                    counts[q] = q == 0 || bucket[q - 1] != h;
                    low[q] = counts[q] ? new int[1 << 16] : low[q - 1];
                } else {
                    long cum = below[q];
                    int l = 0;
                    while (cum + low[q][l] <= rank[q]) cum += low[q][l++];
                    quartile[q] = fromOrderKey((bucket[q] << 16) | l);
                }
            }
            if (pass == 0) hist = null;
            else thr = quartile[1] + 1.5f * (quartile[2] - quartile[0]);
        }

        @Override
        public void compute(Chunk c, float[] out) {
            float[] a = c.in[ia], b = c.in[ib];
            int off = c.offset;
            for (int r0 = 0; r0 < c.length; r0 += row) {
                double rowKl = kl[(int) ((c.start + r0) / row)];
                for (int j = r0; j < r0 + row; j++) {
                    float x = a[off + j], y = b[off + j];
                    out[j] = importance(x, y, rowKl) >= thr ? y : x;
                }
            }
        }
    }

    static float quantile(float[] sorted, double q) {
        return sorted[(int) Math.floor(q * (sorted.length - 1))];
    }

    static double[] softmax(float[] x, int from, int len) {
        return softmax(x, from, len, new double[len]);
    }

    /** softmax(x[from..from+len)) + 1e-8 into {@code p}, which it returns. */
    static double[] softmax(float[] x, int from, int len, double[] p) {
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < len; j++) max = Math.max(max, x[from + j]);
        double s = 0;
        for (int j = 0; j < len; j++) s += p[j] = Math.exp(x[from + j] - max);
        for (int j = 0; j < len; j++) p[j] = p[j] / s + 1e-8;
        return p;
    }
}
