package org.mergeengine.methods;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.mergeengine.config.ConfigException;
import org.mergeengine.tensor.CounterRandom;

/**
 * The task-vector family ("generalized task arithmetic"): task_arithmetic, ties, dare_ties,
 * dare_linear, breadcrumbs, breadcrumbs_ties, della, della_linear. Per tensor:
 * <pre>
 *   d_i = X_i - B                                  task vector of model i
 *   m_i = sparsify(d_i)                            keep mask (method's sparsifier, density_i)
 *   c_i = sum|d_i| / sum|m_i d_i|  if rescale      restore the L1 mass (1 when either sum < 1e-7)
 *   D_i = w_i c_i m_i d_i
 *   consensus:  s = sign(sum_i D_i) (0 counts +), a_i = [sign(D_i) == s]   (zeros never agree)
 *               M = sum a_i D_i,  W = sum a_i w_i (1 where 0)
 *   otherwise:  M = sum D_i,      W = sum w_i     (1 where |W| < 1e-8)
 *   R = B + lambda * (normalize ? M / W : M)
 * </pre>
 * Sparsifiers: magnitude (ties) keeps the floor(density*n) largest |d|; outliers (breadcrumbs)
 * drops the floor(gamma*n) largest and the n - floor(density*n) - floor(gamma*n) smallest; random
 * (DARE) keeps each element with probability density; della keeps with probability
 * density - eps + 2 eps (rank-1)/(L-1), rank of |d| within its row of length L.
 */
public final class TaskArithmetic implements MergeMethod {
    public enum Sparsifier { NONE, MAGNITUDE, OUTLIERS, RANDOM, DELLA }

    private final String name;
    private final Sparsifier sparsifier;
    private final boolean consensus;
    private final double normalizeDefault, rescaleDefault;

    public TaskArithmetic(String name, Sparsifier sparsifier, boolean consensus, boolean normalizeDefault, boolean rescaleDefault) {
        this.name = name;
        this.sparsifier = sparsifier;
        this.consensus = consensus;
        this.normalizeDefault = normalizeDefault ? 1 : 0;
        this.rescaleDefault = rescaleDefault ? 1 : 0;
    }

    @Override public String name() { return name; }
    @Override public BaseUse baseUse() { return BaseUse.REQUIRED; }
    @Override public ResultDType resultDType() { return ResultDType.BASE; }
    @Override public ShapeRule shapeRule() { return ShapeRule.TO_BASE; }

    @Override
    public List<ParamSpec> parameters() {
        List<ParamSpec> p = new ArrayList<>(List.of(
                ParamSpec.requiredPerModel("weight"),
                ParamSpec.perModel("density", 1.0),
                ParamSpec.global("normalize", normalizeDefault),
                ParamSpec.global("rescale", rescaleDefault),
                ParamSpec.global("lambda", 1.0),
                ParamSpec.global("int8_mask", 0.0)));
        if (sparsifier == Sparsifier.OUTLIERS) p.add(ParamSpec.perModel("gamma", 0.01));
        if (sparsifier == Sparsifier.DELLA) p.add(ParamSpec.perModel("epsilon", 0.15));
        return p;
    }

    @Override
    public String description() {
        switch (sparsifier) {
            case MAGNITUDE: return "TIES: top-k magnitude trim, sign election, disjoint mean";
            case OUTLIERS: return "Model Breadcrumbs: drop the largest and smallest task-vector entries" + (consensus ? ", sign election" : "");
            case RANDOM: return "DARE: random drop with L1 rescale" + (consensus ? ", sign election" : "");
            case DELLA: return "DELLA: magnitude-ranked random drop with L1 rescale" + (consensus ? ", sign election" : "");
            default: return "task arithmetic: base plus weighted task vectors";
        }
    }

    @Override
    public void checkInputs(int others, boolean hasBase, String yamlPath) {
        if (!hasBase) throw new ConfigException(yamlPath.isEmpty() ? "base_model" : yamlPath, name + " needs base_model: the task vectors are differences from it");
    }

    @Override
    public void checkParameters(KernelContext ctx) {
        for (int i : ctx.others()) {
            double rho = ctx.model("density", i);
            if (Double.isNaN(rho) || rho < 0) throw ctx.invalid("density", i, "must be >= 0, got " + rho);
            if (sparsifier == Sparsifier.OUTLIERS) {
                double g = ctx.model("gamma", i);
                if (g < 0 || g > 1) throw ctx.invalid("gamma", i, "must be within [0, 1], got " + g);
            }
            if (sparsifier == Sparsifier.DELLA && rho < 1 && rho > 0) {
                double eps = ctx.model("epsilon", i);
                if (!(eps > 0 && eps < rho && rho + eps <= 1)) {
                    throw ctx.invalid("epsilon", i, "must satisfy 0 < epsilon < density and density + epsilon <= 1 (keep probabilities density +- epsilon), got epsilon "
                            + eps + " with density " + rho);
                }
            }
        }
    }

    /**
     * Elementwise without sparsification (every step then is per element); magnitude selections
     * (ties, breadcrumbs) take two counting passes, the L1 rescale of a sparsified model one more;
     * DELLA ranks within whole rows.
     */
    @Override
    public KernelTraits traits(KernelContext ctx) {
        boolean anySelect = false, anySparse = false;
        for (int i : ctx.others()) {
            Sparsifier s = sparsifierOf(ctx, i);
            anySelect |= s == Sparsifier.MAGNITUDE || s == Sparsifier.OUTLIERS;
            anySparse |= s != Sparsifier.NONE;
        }
        int passes = (anySelect ? 2 : 0) + (ctx.flag("rescale") && anySparse ? 1 : 0);
        return new KernelTraits(false, sparsifier == Sparsifier.DELLA ? ctx.rowLength() : 1, passes, !anySparse, false);
    }

    /** Model {@code i}'s sparsifier for this tensor: none when it keeps everything. */
    private Sparsifier sparsifierOf(KernelContext ctx, int i) {
        return ctx.model("density", i) >= 1 ? Sparsifier.NONE : sparsifier;
    }

    @Override
    public TensorKernel kernel(KernelContext ctx) {
        return new Kernel(ctx);
    }

    static final int BLOCK = 32768;

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private static final class Scratch {
        float[][] delta = new float[0][0];
        int[] mask = new int[0], aux = new int[0];
        long[] draws = new long[0];
        float[] sum = new float[0], div = new float[0], signs = new float[0], base = new float[0];

        Scratch ensure(int models, int len) {
            if (delta.length < models || (models > 0 && delta[0].length < len)) {
                int l = Math.max(len, models > 0 && delta.length > 0 ? delta[0].length : 0);
                delta = new float[Math.max(models, delta.length)][l];
            }
            if (mask.length < len) {
                mask = new int[len];
                draws = new long[len];
                aux = new int[len];
                signs = new float[len];
                sum = new float[len];
                div = new float[len];
                base = new float[len];
            }
            return this;
        }
    }

    private final class Kernel implements TensorKernel {
        final int base;
        final int[] o;
        final double[] w, rho;
        final Sparsifier[] sp;
        final MagnitudeSelector[] keep, dropTop, dropBot;
        final long[] streams;
        final double[] eps;
        final double[] l1All, l1Kept;
        final float[] blockAll, blockKept;
        final float[] scale;
        final boolean normalize, rescale;
        final float lambda;
        final int selectionPasses;
        final long rowLen;
        float[][] delta;
        int[] mask, aux;
        long[] draws;
        /** DELLA's masks (a sort per row) drawn in the rescale pass, kept as bits per chunk so the compute pass does not draw them again. */
        final Map<Long, long[][]> drawn = new ConcurrentHashMap<>();
        final long drawnLimit = 64L << 20;
        long drawnBits;
        float[] sum, div;
        /** The block's base values, then its result: loops over arrays that all start at 0. */
        float[] res;
        float[] signs;
        /** DELLA's per-row ordering, made at its first use. */
        private MagnitudeRanks ranks;

        Kernel(KernelContext ctx) {
            base = ctx.baseIndex();
            o = ctx.others();
            int n = o.length;
            long numel = ctx.numel();
            w = new double[n];
            rho = new double[n];
            eps = new double[n];
            sp = new Sparsifier[n];
            keep = new MagnitudeSelector[n];
            dropTop = new MagnitudeSelector[n];
            dropBot = new MagnitudeSelector[n];
            streams = new long[n];
            l1All = new double[n];
            l1Kept = new double[n];
            blockAll = new float[n];
            blockKept = new float[n];
            scale = new float[n];
            normalize = ctx.flag("normalize");
            rescale = ctx.flag("rescale");
            lambda = (float) ctx.global("lambda");
            rowLen = ctx.rowLength();
            boolean anySelect = false;
            for (int k = 0; k < n; k++) {
                int i = o[k];
                w[k] = ctx.model("weight", i);
                rho[k] = ctx.model("density", i);
                sp[k] = sparsifierOf(ctx, i);
                scale[k] = 1f;
                streams[k] = CounterRandom.streamKey(ctx.seed(), ctx.tensorName(), i);
                switch (sp[k]) {
                    case MAGNITUDE:
                        keep[k] = new MagnitudeSelector((long) Math.floor(rho[k] * numel), numel, true, true);
                        anySelect = true;
                        break;
                    case OUTLIERS: {
                        long top = (long) Math.floor(ctx.model("gamma", i) * numel);
                        long target = (long) Math.floor(rho[k] * numel);
                        long bot = numel - target - top;
                        if (bot < 0) {
                            top += bot;
                            bot = 0;
                        }
                        // In ascending (magnitude, index) order: drop the last `top` and the first `bot`.
                        dropTop[k] = new MagnitudeSelector(top, numel, true, false);
                        dropBot[k] = new MagnitudeSelector(bot, numel, false, true);
                        anySelect = true;
                        break;
                    }
                    case DELLA:
                        eps[k] = ctx.model("epsilon", i);
                        break;
                    default:
                        break;
                }
            }
            selectionPasses = anySelect ? 2 : 0;
        }

        private void deltas(Chunk c) {
            int n = o.length;
            // Scratch is only used within one reduce or compute call: share it per thread across kernels
            // (allocating it per tensor cost more than the math for mid-sized tensors).
            Scratch sc = SCRATCH.get().ensure(n, c.length);
            delta = sc.delta;
            mask = sc.mask;
            aux = sc.aux;
            draws = sc.draws;
            sum = sc.sum;
            res = sc.base;
            div = sc.div;
            signs = sc.signs;
            // Every loop here and in computeBlock indexes its arrays from 0: given an offset into one
            // array and another into a second, the JIT cannot rule out that the two overlap and leaves
            // the loop scalar (three times slower). Bulk copies bring the block's slices to 0 instead.
            int off = c.offset, len = c.length;
            System.arraycopy(c.in[base], off, res, 0, len);
            for (int k = 0; k < n; k++) {
                float[] d = delta[k];
                System.arraycopy(c.in[o[k]], off, d, 0, len);
                if (!c.holdsTaskVectors()) {
                    float[] b = res;
                    for (int j = 0; j < len; j++) d[j] -= b[j];
                }
            }
        }

        /** Turns the block's non-base inputs into task vectors in place (the chunk is marked by the caller). */
        private void toTaskVectors(Chunk c) {
            float[] b = c.in[base];
            int off = c.offset, end = c.offset + c.length;
            for (int k = 0; k < o.length; k++) {
                float[] x = c.in[o[k]];
                for (int j = off; j < end; j++) x[j] -= b[j];
            }
        }

        private void restartIfFirst(Chunk c) {
            if (c.start != 0) return;
            for (int k = 0; k < o.length; k++) {
                if (keep[k] != null) keep[k].restart();
                if (dropTop[k] != null) { dropTop[k].restart(); dropBot[k].restart(); }
            }
        }

        /** Blocks small enough that every step's arrays stay in cache (DELLA: whole rows). */
        private int block() {
            if (sparsifier != Sparsifier.DELLA) return BLOCK;
            return (int) Math.max(rowLen, BLOCK / rowLen * rowLen);
        }

        @Override
        public void reduce(int pass, Chunk c) {
            int bl = block();
            // The selection passes only count magnitudes: they work on the chunk's own arrays, turned
            // into task vectors at the first of them. A chunk the engine keeps in memory across the
            // passes is then read as one array per model, not two, and never subtracted again.
            boolean convert = pass < selectionPasses && !c.holdsTaskVectors();
            for (int s = 0; s < c.length; s += bl) {
                Chunk v = c.view(s, Math.min(bl, c.length - s));
                if (convert) {
                    toTaskVectors(v);
                    v.markTaskVectors();
                }
                reduceBlock(pass, v);
            }
            if (convert) c.markTaskVectors();
        }

        @Override
        public void compute(Chunk c, float[] out) {
            int bl = block();
            for (int s = 0; s < c.length; s += bl) computeBlock(c.view(s, Math.min(bl, c.length - s)), out, s);
        }

        private void reduceBlock(int pass, Chunk c) {
            restartIfFirst(c);
            if (pass < selectionPasses) {
                for (int k = 0; k < o.length; k++) {
                    for (MagnitudeSelector s : new MagnitudeSelector[] {keep[k], dropTop[k], dropBot[k]}) {
                        if (s == null) continue;
                        if (pass == 0) s.countHigh(c.in[o[k]], c.offset, c.length); else s.countLow(c.in[o[k]], c.offset, c.length);
                    }
                }
                return;
            }
            deltas(c);
            for (int k = 0; k < o.length; k++) {
                float[] d = delta[k];
                if (sp[k] != Sparsifier.NONE) {
                    mask(k, c, d);
                    remember(k, c);
                    // Branch-free float sums over blocks of 1024 elements at fixed absolute positions (so the
                    // result does not depend on how the tensor is chunked), folded into doubles.
                    int j = 0;
                    while (j < c.length) {
                        long g = c.start + j;
                        int end = (int) Math.min(c.length, j + (1024 - (g & 1023)));
                        float ba = blockAll[k], bk = blockKept[k];
                        for (; j < end; j++) {
                            float a = Math.abs(d[j]);
                            ba += a;
                            bk += a * (float) (-mask[j]);
                        }
                        if (((c.start + end) & 1023) == 0) {
                            l1All[k] += ba;
                            l1Kept[k] += bk;
                            ba = 0;
                            bk = 0;
                        }
                        blockAll[k] = ba;
                        blockKept[k] = bk;
                    }
                }
            }
        }

        @Override
        public void endPass(int pass) {
            for (int k = 0; k < o.length; k++) {
                if (pass < selectionPasses) {
                    for (MagnitudeSelector s : new MagnitudeSelector[] {keep[k], dropTop[k], dropBot[k]}) {
                        if (s == null) continue;
                        if (pass == 0) s.endHigh(); else s.endLow();
                    }
                } else if (sp[k] != Sparsifier.NONE) {
                    l1All[k] += blockAll[k]; // the last, partial block
                    l1Kept[k] += blockKept[k];
                    if (l1All[k] >= 1e-7 && l1Kept[k] >= 1e-7) scale[k] = (float) (l1All[k] / l1Kept[k]);
                }
            }
        }

        /**
         * DELLA's masks are kept from the rescale pass for the compute pass. DARE's are drawn again:
         * its vectorised draws cost less than packing the bits and reading them back.
         */
        private boolean remembered(int k) {
            return sp[k] == Sparsifier.DELLA;
        }

        private void remember(int k, Chunk c) {
            if (!remembered(k) || drawnBits + c.length > drawnLimit * 8) return;
            long[][] bits = drawn.computeIfAbsent(c.start, s -> new long[o.length][]);
            long[] b = new long[(c.length + 63) >>> 6];
            for (int j = 0; j < c.length; j++) b[j >>> 6] |= ((long) -mask[j] & 1L) << j;
            bits[k] = b;
            drawnBits += c.length;
        }

        private boolean recall(int k, Chunk c) {
            long[][] bits = drawn.get(c.start);
            if (bits == null || bits[k] == null) return false;
            long[] b = bits[k];
            for (int j = 0; j < c.length; j++) mask[j] = (int) -((b[j >>> 6] >>> j) & 1L);
            bits[k] = null;
            return true;
        }

        /** Fills mask[0..len) with model k's keep decisions for this chunk (-1 keep, 0 drop), in index order. */
        private void mask(int k, Chunk c, float[] d) {
            int len = c.length;
            if (remembered(k) && recall(k, c)) return;
            switch (sp[k]) {
                case NONE:
                    Arrays.fill(mask, 0, len, -1);
                    break;
                case MAGNITUDE:
                    keep[k].fill(d, len, mask);
                    break;
                case OUTLIERS:
                    dropTop[k].fill(d, len, mask);
                    dropBot[k].fill(d, len, aux);
                    for (int j = 0; j < len; j++) mask[j] = ~(mask[j] | aux[j]);
                    break;
                case RANDOM: {
                    long key = streams[k], thr = CounterRandom.below(rho[k]);
                    CounterRandom.keepMasks(key, c.start, thr, mask, len, draws);
                    break;
                }
                case DELLA:
                    dellaMask(k, c, d);
                    break;
                default:
                    throw new IllegalStateException();
            }
        }

        private void dellaMask(int k, Chunk c, float[] d) {
            if (rho[k] <= 0) {
                Arrays.fill(mask, 0, c.length, 0);
                return;
            }
            int L = (int) rowLen;
            int[] order = new int[L];
            if (ranks == null) ranks = new MagnitudeRanks();
            for (int r0 = 0; r0 < c.length; r0 += L) {
                ranks.ascending(d, r0, L, order);
                for (int rank = 0; rank < L; rank++) {
                    int j = order[rank];
                    // A one-element row has no spread of ranks: it keeps with probability density.
                    double p = L == 1 ? rho[k] : rho[k] - eps[k] + 2 * eps[k] * rank / (double) (L - 1);
                    mask[r0 + j] = CounterRandom.uniform(streams[k], c.start + r0 + j) < p ? -1 : 0;
                }
            }
        }

        private void computeBlock(Chunk c, float[] out, int outOff) {
            deltas(c);
            restartIfFirst(c);
            int n = o.length, len = c.length;
            for (int k = 0; k < n; k++) {
                float[] d = delta[k];
                float f = (float) (w[k]) * scale[k];
                if (sp[k] == Sparsifier.NONE) {
                    for (int j = 0; j < len; j++) d[j] *= f;
                } else {
                    mask(k, c, d);
                    for (int j = 0; j < len; j++) d[j] = Float.intBitsToFloat(Float.floatToRawIntBits(d[j] * f) & mask[j]);
                }
            }
            float[] b = res;
            if (consensus) {
                // Sign election without branches or float/int bit moves, so that the JIT vectorises it.
                // nonzero(v) is 1 for any v > 0 (subnormals included: v * 2^254 >= 1) and 0 for v = 0;
                // signs[j] is the elected sign as -1 or +1 (a sum of zero, -0 too, elects +). A contribution
                // agrees when d * sign > 0: it then adds d to the sum and its weight to the divisor.
                Arrays.fill(sum, 0, len, 0f);
                for (int k = 0; k < n; k++) {
                    float[] d = delta[k];
                    for (int j = 0; j < len; j++) sum[j] += d[j];
                }
                for (int j = 0; j < len; j++) signs[j] = 1f - 2f * Math.min(Math.max(-sum[j], 0f) * 0x1p127f * 0x1p127f, 1f);
                Arrays.fill(sum, 0, len, 0f);
                Arrays.fill(div, 0, len, 0f);
                for (int k = 0; k < n; k++) {
                    float[] d = delta[k];
                    float wk = (float) w[k];
                    for (int j = 0; j < len; j++) {
                        float e = signs[j];
                        float agreeing = Math.max(d[j] * e, 0f); // |d| where it agrees, else 0
                        sum[j] += e * agreeing;
                        div[j] += wk * Math.min(agreeing * 0x1p127f * 0x1p127f, 1f);
                    }
                }
                if (normalize) {
                    for (int j = 0; j < len; j++) {
                        // where nothing agreed the divisor is 1 (the sum is 0 there)
                        float dv = div[j] + (1f - Math.min(Math.abs(div[j]) * 0x1p127f * 0x1p127f, 1f));
                        b[j] = b[j] + lambda * (sum[j] / dv);
                    }
                } else {
                    for (int j = 0; j < len; j++) b[j] = b[j] + lambda * sum[j];
                }
            } else {
                double wsum = 0;
                for (double x : w) wsum += x;
                float inv = normalize ? (float) (1.0 / (Math.abs(wsum) < 1e-8 ? 1.0 : wsum)) : 1f;
                Arrays.fill(sum, 0, len, 0f);
                for (int k = 0; k < n; k++) {
                    float[] d = delta[k];
                    for (int j = 0; j < len; j++) sum[j] += d[j];
                }
                for (int j = 0; j < len; j++) b[j] = b[j] + lambda * (sum[j] * inv);
            }
            System.arraycopy(b, 0, out, outOff, len);
        }
    }
}
