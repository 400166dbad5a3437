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
    public TensorKernel kernel(KernelContext ctx) {
        int[] o = ctx.others();
        if (o.length == 1) return Copy.of(o[0]);
        int base = ctx.baseIndex();
        double w1 = ctx.model("weight", o[0]), w2 = ctx.model("weight", o[1]);
        double t = Math.abs(w1 + w2) < 1e-6 ? 0.5 : w2 / (w1 + w2);
        boolean flatten = ctx.flag("nuslerp_flatten"), colWise = !flatten && ctx.flag("nuslerp_row_wise");
        long[] shape = ctx.shape();
        long rowLen = ctx.rowLength();
        return new TensorKernel() {
            @Override public boolean wholeTensor() { return flatten || colWise; }
            @Override public long alignment() { return rowLen; }

            @Override
            public void compute(Chunk c, float[] out) {
                int len = c.length;
                float[] a = new float[len], b = new float[len];
                for (int j = 0; j < len; j++) {
                    float bs = base >= 0 ? c.in[base][j] : 0f;
                    a[j] = c.in[o[0]][j] - bs;
                    b[j] = c.in[o[1]][j] - bs;
                }
                if (flatten) {
                    slerp(a, b, 0, 1, len, out);
                } else if (colWise && shape.length >= 2) {
                    int cols = (int) rowLen, rows = len / cols;
                    // vectors along the first dimension: element k of vector j is at k*cols + j
                    for (int j = 0; j < cols; j++) slerp(a, b, j, cols, rows, out);
                } else {
                    int L = (int) rowLen;
                    for (int r0 = 0; r0 < len; r0 += L) slerp(a, b, r0, 1, L, out);
                }
                if (base >= 0) for (int j = 0; j < len; j++) out[j] += c.in[base][j];
            }

            void slerp(float[] a, float[] b, int start, int stride, int count, float[] out) {
                double na = 0, nb = 0, dot = 0;
                for (int k = 0, j = start; k < count; k++, j += stride) {
                    na += a[j] * (double) a[j];
                    nb += b[j] * (double) b[j];
                    dot += a[j] * (double) b[j];
                }
                double cos = dot / (Math.max(Math.sqrt(na), 1e-7) * Math.max(Math.sqrt(nb), 1e-7));
                cos = Math.max(-1, Math.min(1, cos));
                double theta = Math.acos(cos), s = Math.sin(theta);
                float ca, cb;
                if (Math.abs(s) < 1e-8) {
                    ca = (float) (1 - t);
                    cb = (float) t;
                } else {
                    ca = (float) (Math.sin((1 - t) * theta) / s);
                    cb = (float) (Math.sin(t * theta) / s);
                }
                for (int k = 0, j = start; k < count; k++, j += stride) out[j] = ca * a[j] + cb * b[j];
            }
        };
    }
}
