package org.mergeengine.methods;

import java.util.List;
import org.mergeengine.config.ConfigException;

/**
 * model_stock: offsets o_i = W_i - W0 from the base; c = mean over pairs i<j of
 * cos(o_i, o_j) = <o_i,o_j> / max(|o_i||o_j|, 1e-6), clamped to [-1, 1]; t = N c / (1 + (N-1) c);
 * R = t · mean(W_i) + (1 - t) · W0. Whole tensor as one vector, or each row (last dimension) on its
 * own with filter_wise. t is not clamped (as in mergekit).
 */
public final class ModelStock implements MergeMethod {
    @Override public String name() { return "model_stock"; }
    @Override public List<ParamSpec> parameters() { return List.of(ParamSpec.global("filter_wise", 0)); }
    @Override public BaseUse baseUse() { return BaseUse.REQUIRED; }
    @Override public ResultDType resultDType() { return ResultDType.PROMOTE; }
    @Override public String description() { return "Model Stock: interpolates the fine-tunes' mean towards the base by their agreement"; }

    @Override
    public void checkInputs(int others, boolean hasBase, String yamlPath) {
        if (!hasBase) throw new ConfigException(yamlPath.isEmpty() ? "base_model" : yamlPath, "model_stock needs base_model");
        if (others < 2) throw new ConfigException(yamlPath.isEmpty() ? "models" : yamlPath, "model_stock requires at least 3 models (the base and two or more fine-tunes), found " + (others + 1));
    }

    @Override
    public KernelTraits traits(KernelContext ctx) {
        return ctx.flag("filter_wise") ? KernelTraits.streamed().withAlignment(ctx.rowLength()) : KernelTraits.streamed().withPasses(1);
    }

    @Override
    public TensorKernel kernel(KernelContext ctx) {
        int base = ctx.baseIndex();
        int[] o = ctx.others();
        boolean rows = ctx.flag("filter_wise");
        long rowLen = ctx.rowLength();
        int n = o.length;
        return new TensorKernel() {
            final double[][] dots = new double[n][n]; // whole-tensor mode: <o_i, o_j>, norms on the diagonal
            float t;

            @Override
            public void reduce(int pass, Chunk c) {
                accumulate(c, 0, c.length, dots);
            }

            @Override
            public void endPass(int pass) {
                t = ratio(dots);
            }

            void accumulate(Chunk c, int from, int to, double[][] acc) {
                float[] b = c.in[base];
                for (int i = 0; i < n; i++) {
                    float[] x = c.in[o[i]];
                    for (int k = i; k < n; k++) {
                        float[] y = c.in[o[k]];
                        double s = 0;
                        for (int j = from; j < to; j++) s += (x[j] - b[j]) * (double) (y[j] - b[j]);
                        acc[i][k] += s;
                    }
                }
            }

            float ratio(double[][] acc) {
                double sum = 0;
                int pairs = 0;
                for (int i = 0; i < n; i++) {
                    for (int k = i + 1; k < n; k++) {
                        double cos = acc[i][k] / Math.max(Math.sqrt(acc[i][i]) * Math.sqrt(acc[k][k]), 1e-6);
                        sum += Math.max(-1, Math.min(1, cos));
                        pairs++;
                    }
                }
                double cbar = sum / pairs;
                return (float) (n * cbar / (1 + (n - 1) * cbar));
            }

            @Override
            public void compute(Chunk c, float[] out) {
                int step = rows ? (int) rowLen : c.length;
                for (int r0 = 0; r0 < c.length; r0 += step) {
                    float tt = t;
                    if (rows) {
                        double[][] acc = new double[n][n];
                        accumulate(c, r0, r0 + step, acc);
                        tt = ratio(acc);
                    }
                    float[] b = c.in[base];
                    for (int j = r0; j < r0 + step; j++) {
                        float mean = 0;
                        for (int i = 0; i < n; i++) mean += c.in[o[i]][j];
                        mean /= n;
                        out[j] = tt * mean + (1 - tt) * b[j];
                    }
                }
            }
        };
    }
}
