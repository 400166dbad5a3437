package org.mergeengine.methods;

import java.util.List;
import org.mergeengine.config.ConfigException;

/**
 * nuslerp: slerp of two models with t = w2 / (w1 + w2) (0.5 when the weights cancel), of their task
 * vectors when a base is given (R = B + S(t, X1-B, X2-B)), else of the models themselves. S works
 * per vector: the whole tensor (nuslerp_flatten, the default), each slice along the last dimension
 * (matrix rows), or with nuslerp_row_wise each slice along the first dimension (matrix columns).
 * Per vector: c = clamp(â·b̂, -1, 1), θ = acos c, S = (sin((1-t)θ) a + sin(tθ) b) / sin θ, or the
 * plain lerp where |sin θ| < 1e-8.
 */
public final class NuSlerp implements MergeMethod {
    @Override public String name() { return "nuslerp"; }
    @Override public BaseUse baseUse() { return BaseUse.OPTIONAL; }
    @Override public ResultDType resultDType() { return ResultDType.PROMOTE; }
    @Override public String description() { return "slerp of two models or of their task vectors, per tensor, row or column"; }

    @Override
    public List<ParamSpec> parameters() {
        return List.of(ParamSpec.requiredPerModel("weight"), ParamSpec.global("nuslerp_flatten", 1), ParamSpec.global("nuslerp_row_wise", 0));
    }

    @Override
    public void checkInputs(int others, boolean hasBase, String yamlPath) {
        if (others != 2 && !(others == 1 && !hasBase)) {
            throw new ConfigException(yamlPath.isEmpty() ? "models" : yamlPath, "nuslerp merges exactly two models"
                    + (hasBase ? " besides the base (the base can not be one of the two)" : "") + ", found " + others);
        }
    }

    @Override
    public KernelTraits traits(KernelContext ctx) {
        int[] o = ctx.others();
        if (o.length == 1) return Copy.traits(o[0]);
        return KernelTraits.streamed().withAlignment(ctx.rowLength()).withPasses(vectors(ctx) > 0 ? 1 : 0);
    }

    /** One vector per tensor, per column (a slice along the first dimension), or per row (0: rows, each within a chunk). */
    private static int vectors(KernelContext ctx) {
        boolean flatten = ctx.flag("nuslerp_flatten"), colWise = !flatten && ctx.flag("nuslerp_row_wise");
        return flatten || (colWise && ctx.shape().length < 2) ? 1 : colWise ? (int) ctx.rowLength() : 0;
    }

    @Override
    public TensorKernel kernel(KernelContext ctx) {
        int[] o = ctx.others();
        if (o.length == 1) return Copy.of(o[0]);
        int base = ctx.baseIndex();
        double w1 = ctx.model("weight", o[0]), w2 = ctx.model("weight", o[1]);
        double t = Math.abs(w1 + w2) < 1e-6 ? 0.5 : w2 / (w1 + w2);
        return new Kernel(o[0], o[1], base, t, (int) ctx.rowLength(), vectors(ctx));
    }

    /**
     * A tensor or its columns are streamed: one pass sums |a|², |b|² and a·b per vector (in index
     * order, as over the whole tensor at once), the output pass applies each vector's two
     * coefficients. Rows fit in a chunk and take one pass.
     */
    private static final class Kernel implements TensorKernel {
        private final int x1, x2, base, rowLen, vectors;
        private final double t;
        /** Per vector: the sums, then the two coefficients. */
        private final double[] na, nb, dot;
        private final float[] ca, cb;

        Kernel(int x1, int x2, int base, double t, int rowLen, int vectors) {
            this.x1 = x1;
            this.x2 = x2;
            this.base = base;
            this.t = t;
            this.rowLen = rowLen;
            this.vectors = vectors;
            int v = Math.max(1, vectors);
            na = new double[v];
            nb = new double[v];
            dot = new double[v];
            ca = new float[v];
            cb = new float[v];
        }

        private float a(Chunk c, int j) {
            return c.in[x1][c.offset + j] - (base >= 0 ? c.in[base][c.offset + j] : 0f);
        }

        private float b(Chunk c, int j) {
            return c.in[x2][c.offset + j] - (base >= 0 ? c.in[base][c.offset + j] : 0f);
        }

        /** The vector element j of the chunk belongs to (chunks start on whole rows). */
        private int vector(int j) {
            return vectors == 1 ? 0 : j % rowLen;
        }

        @Override
        public void reduce(int pass, Chunk c) {
            for (int j = 0; j < c.length; j++) {
                int v = vector(j);
                float a = a(c, j), b = b(c, j);
                na[v] += a * (double) a;
                nb[v] += b * (double) b;
                dot[v] += a * (double) b;
            }
        }

        @Override
        public void endPass(int pass) {
            for (int v = 0; v < vectors; v++) coefficients(na[v], nb[v], dot[v], v);
        }

        private void coefficients(double na, double nb, double dot, int v) {
            double cos = dot / (Math.max(Math.sqrt(na), 1e-7) * Math.max(Math.sqrt(nb), 1e-7));
            cos = Math.max(-1, Math.min(1, cos));
            double theta = Math.acos(cos), s = Math.sin(theta);
            if (Math.abs(s) < 1e-8) {
                ca[v] = (float) (1 - t);
                cb[v] = (float) t;
            } else {
                ca[v] = (float) (Math.sin((1 - t) * theta) / s);
                cb[v] = (float) (Math.sin(t * theta) / s);
            }
        }

        @Override
        public void compute(Chunk c, float[] out) {
            int len = c.length;
            if (vectors == 0) {
                for (int r0 = 0; r0 < len; r0 += rowLen) {
                    double sa = 0, sb = 0, sd = 0;
                    for (int j = r0; j < r0 + rowLen; j++) {
                        float a = a(c, j), b = b(c, j);
                        sa += a * (double) a;
                        sb += b * (double) b;
                        sd += a * (double) b;
                    }
                    coefficients(sa, sb, sd, 0);
                    for (int j = r0; j < r0 + rowLen; j++) out[j] = ca[0] * a(c, j) + cb[0] * b(c, j);
                }
            } else {
                for (int j = 0; j < len; j++) {
                    int v = vector(j);
                    out[j] = ca[v] * a(c, j) + cb[v] * b(c, j);
                }
            }
            if (base >= 0) for (int j = 0; j < len; j++) out[j] += c.in[base][c.offset + j];
        }
    }
}
