package org.mergeengine.methods;

import java.util.List;
import org.mergeengine.config.ConfigException;

/**
 * sce (select, calculate, erase) on task vectors T_i = X_i - B: with select_topk < 1 keep only the
 * floor(select_topk · #nonzero-variance) positions where the models vary most (population variance
 * across models; one mask for all); erase the entries whose sign disagrees with sign(sum_i T_i);
 * weight each model by ω_i = mean(T_i²) / sum_k mean(T_k²) (1/n when that sum is < 1e-6);
 * R = B + sum_i ω_i e_i T_i / max(sum_i ω_i e_i, 1e-6).
 */
public final class Sce implements MergeMethod {
    @Override public String name() { return "sce"; }
    @Override public BaseUse baseUse() { return BaseUse.REQUIRED; }
    @Override public ResultDType resultDType() { return ResultDType.BASE; }
    @Override public ShapeRule shapeRule() { return ShapeRule.TO_BASE; }
    @Override public String description() { return "SCE: variance-selected, sign-erased, energy-weighted task vectors"; }

    @Override
    public List<ParamSpec> parameters() {
        return List.of(ParamSpec.global("select_topk", 1.0), ParamSpec.global("int8_mask", 0));
    }

    @Override
    public void checkInputs(int others, boolean hasBase, String yamlPath) {
        if (!hasBase) throw new ConfigException(yamlPath.isEmpty() ? "base_model" : yamlPath, "sce needs base_model");
    }

    @Override
    public KernelTraits traits(KernelContext ctx) {
        if (ctx.others().length == 0) return Copy.traits(ctx.baseIndex());
        return KernelTraits.streamed().withPasses(ctx.global("select_topk") < 1 ? 3 : 1);
    }

    @Override
    public TensorKernel kernel(KernelContext ctx) {
        int base = ctx.baseIndex();
        int[] o = ctx.others();
        if (o.length == 0) return Copy.of(base);
        return new Kernel(base, o, ctx.global("select_topk"), ctx.numel());
    }

    /**
     * Streams the tensor. With select_topk < 1: two passes find the variance cut (the exact
     * histogram selection TIES uses; the first also counts the positions of nonzero variance, which
     * set how many are kept), and a third sums each model's energy over the kept positions; without
     * it that third pass alone. Sums run in index order, as over the whole tensor at once.
     */
    private static final class Kernel implements TensorKernel {
        private final int base, n;
        private final int[] o;
        private final double topk;
        private final long numel;
        private final boolean selects;
        private long nonzero;
        private MagnitudeSelector sel;
        private final double[] omega;
        private float[][] t = new float[0][];
        private float[] var = new float[0];
        private int[] keep = new int[0];

        Kernel(int base, int[] o, double topk, long numel) {
            this.base = base;
            this.o = o;
            this.n = o.length;
            this.topk = topk;
            this.numel = numel;
            this.selects = topk < 1;
            this.omega = new double[n];
            if (selects) sel = MagnitudeSelector.deferred(numel, true, true);
        }

        /** Elements per step: the task vectors, variances and sums of a block stay in the cache. */
        private static final int BLOCK = 8192;

        /** A block's task vectors, their variances across the models, and (after the cut is known) the kept positions. */
        private void load(Chunk c, boolean mask) {
            int len = c.length, off = c.offset;
            if (t.length != n || t[0].length < len) {
                t = new float[n][len];
                var = new float[len];
                keep = new int[len];
            }
            float[] b = c.in[base];
            for (int i = 0; i < n; i++) {
                float[] x = c.in[o[i]], ti = t[i];
                for (int j = 0; j < len; j++) ti[j] = x[off + j] - b[off + j];
            }
            if (!selects) return;
            // population variance across the models, element by element: Java 17 vectorises no float to
            // double loop, and per element the sums stay in registers (half the time of array passes)
            for (int j = 0; j < len; j++) {
                double m = 0, s = 0;
                for (float[] x : t) m += x[j];
                m /= n;
                for (float[] x : t) s += (x[j] - m) * (x[j] - m);
                var[j] = (float) (s / n);
            }
            if (!mask) return;
            sel.fill(var, len, keep);
            for (float[] x : t) for (int j = 0; j < len; j++) if (keep[j] == 0) x[j] = 0;
        }

        @Override
        public void reduce(int pass, Chunk chunk) {
            for (int s = 0; s < chunk.length; s += BLOCK) reduceBlock(pass, chunk.view(s, Math.min(BLOCK, chunk.length - s)));
        }

        private void reduceBlock(int pass, Chunk c) {
            int len = c.length;
            int energyPass = selects ? 2 : 0;
            if (pass == 0 && selects) {
                load(c, false);
                long z = 0;
                for (int j = 0; j < len; j++) z += var[j] != 0 ? 1 : 0;
                nonzero += z;
                sel.countHigh(var, len);
            } else if (pass == 1 && selects) {
                load(c, false);
                sel.countLow(var, len);
            } else if (pass == energyPass) {
                if (selects && c.start == 0) sel.restart();
                load(c, true);
                for (int i = 0; i < n; i++) {
                    double s = omega[i];
                    for (int j = 0; j < len; j++) s += t[i][j] * (double) t[i][j];
                    omega[i] = s;
                }
            }
        }

        @Override
        public void endPass(int pass) {
            if (selects && pass == 0) {
                sel.k(topk <= 0 ? 0 : (long) Math.floor(nonzero * topk));
                sel.endHigh();
            } else if (selects && pass == 1) {
                sel.endLow();
            } else {
                double total = 0;
                for (int i = 0; i < n; i++) total += omega[i] = omega[i] / numel;
                for (int i = 0; i < n; i++) omega[i] = Math.abs(total) < 1e-6 ? 1.0 / n : omega[i] / total;
            }
        }

        @Override
        public void compute(Chunk chunk, float[] out) {
            for (int s = 0; s < chunk.length; s += BLOCK) computeBlock(chunk.view(s, Math.min(BLOCK, chunk.length - s)), out, s);
        }

        private void computeBlock(Chunk c, float[] out, int outOff) {
            int len = c.length;
            if (selects && c.start == 0) sel.restart();
            load(c, true);
            float[] b = c.in[base];
            for (int j = 0; j < len; j++) {
                float s = 0;
                for (int i = 0; i < n; i++) s += t[i][j];
                boolean pos = s >= 0;
                double num = 0, den = 0;
                for (int i = 0; i < n; i++) {
                    float v = t[i][j];
                    if (pos ? v > 0 : v < 0) {
                        num += omega[i] * v;
                        den += omega[i];
                    }
                }
                out[outOff + j] = (float) (b[c.offset + j] + num / Math.max(den, 1e-6));
            }
        }
    }
}
