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
    public TensorKernel kernel(KernelContext ctx) {
        int ia = ctx.baseIndex(), ib = ctx.others()[0];
        int row = (int) ctx.rowLength();
        return new TensorKernel() {
            @Override public boolean wholeTensor() { return true; }

            @Override
            public void compute(Chunk c, float[] out) {
                float[] a = c.in[ia], b = c.in[ib];
                int len = c.length;
                float[] imp = new float[len];
                for (int r0 = 0; r0 < len; r0 += row) {
                    double[] p = softmax(b, r0, row), q = softmax(a, r0, row);
                    double kl = 0;
                    for (int j = 0; j < row; j++) kl += p[j] * Math.log(p[j] / q[j]);
                    for (int j = 0; j < row; j++) imp[r0 + j] = (float) (Math.abs(b[r0 + j] - a[r0 + j]) * kl);
                }
                float[] sorted = imp.clone();
                java.util.Arrays.sort(sorted);
                float thr = quantile(sorted, 0.5) + 1.5f * (quantile(sorted, 0.75) - quantile(sorted, 0.25));
                for (int j = 0; j < len; j++) out[j] = imp[j] >= thr ? b[j] : a[j];
            }
        };
    }

    static float quantile(float[] sorted, double q) {
        return sorted[(int) Math.floor(q * (sorted.length - 1))];
    }

    static double[] softmax(float[] x, int from, int len) {
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < len; j++) max = Math.max(max, x[from + j]);
        double[] p = new double[len];
        double s = 0;
        for (int j = 0; j < len; j++) s += p[j] = Math.exp(x[from + j] - max);
        for (int j = 0; j < len; j++) p[j] = p[j] / s + 1e-8;
        return p;
    }
}
