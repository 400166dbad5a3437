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
    public TensorKernel kernel(KernelContext ctx) {
        int base = ctx.baseIndex();
        int[] o = ctx.others();
        double topk = ctx.global("select_topk");
        return new TensorKernel() {
            @Override public boolean wholeTensor() { return true; }

            @Override
            public void compute(Chunk c, float[] out) {
                int len = c.length, n = o.length;
                float[] b = c.in[base];
                if (n == 0) {
                    System.arraycopy(b, 0, out, 0, len);
                    return;
                }
                float[][] t = new float[n][len];
                for (int i = 0; i < n; i++) for (int j = 0; j < len; j++) t[i][j] = c.in[o[i]][j] - b[j];
                if (topk < 1) select(t, len);
                double[] omega = new double[n];
                double total = 0;
                for (int i = 0; i < n; i++) {
                    double s = 0;
                    for (float v : t[i]) s += v * (double) v;
                    total += omega[i] = s / len;
                }
                for (int i = 0; i < n; i++) omega[i] = Math.abs(total) < 1e-6 ? 1.0 / n : omega[i] / total;
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
                    out[j] = (float) (b[j] + num / Math.max(den, 1e-6));
                }
            }

            void select(float[][] t, int len) {
                int n = t.length;
                float[] var = new float[len];
                long nonzero = 0;
                for (int j = 0; j < len; j++) {
                    double m = 0, s = 0;
                    for (float[] x : t) m += x[j];
                    m /= n;
                    for (float[] x : t) s += (x[j] - m) * (x[j] - m);
                    var[j] = (float) (s / n);
                    if (var[j] != 0) nonzero++;
                }
                long k = topk <= 0 ? 0 : (long) Math.floor(nonzero * topk);
                MagnitudeSelector sel = new MagnitudeSelector(k, len, true, true);
                sel.countHigh(var, len);
                sel.endHigh();
                sel.countLow(var, len);
                sel.endLow();
                sel.restart();
                for (int j = 0; j < len; j++) {
                    if (!sel.member(var[j])) for (float[] x : t) x[j] = 0;
                }
            }
        };
    }
}
