package org.mergeengine.methods;

import java.util.Arrays;
import java.util.List;
import org.mergeengine.config.ConfigException;

/**
 * ram: a task-vector entry is active when |δ_i| > epsilon; at each position with c active models,
 * R = B + (sum of active δ_i) / c (a lone active entry is kept whole, shared ones are averaged).
 * ramplus_tl (plus = true) also boosts each model's unique entries by λ_i = 1 + r·clamp(ρ_i, 0, α),
 * ρ_i = (#its active shared entries) / max(#its active unique entries, epsilon) within the tensor.
 */
public final class Ram implements MergeMethod {
    private final boolean plus;

    public Ram(boolean plus) {
        this.plus = plus;
    }

    @Override public String name() { return plus ? "ramplus_tl" : "ram"; }
    @Override public BaseUse baseUse() { return BaseUse.REQUIRED; }
    @Override public ResultDType resultDType() { return ResultDType.BASE; }
    @Override public ShapeRule shapeRule() { return ShapeRule.TO_BASE; }
    @Override public String description() { return plus ? "RAM+: RAM with boosted unique entries" : "RAM: keeps unique task-vector entries, averages shared ones"; }

    @Override
    public List<ParamSpec> parameters() {
        return plus ? List.of(ParamSpec.global("epsilon", 1e-5), ParamSpec.global("r", 0.1), ParamSpec.global("alpha", 0.2))
                : List.of(ParamSpec.global("epsilon", 1e-5));
    }

    @Override
    public void checkInputs(int others, boolean hasBase, String yamlPath) {
        if (!hasBase) throw new ConfigException(yamlPath.isEmpty() ? "base_model" : yamlPath, name() + " needs base_model");
    }

    /** Each output element reads only the same element of the inputs (ramplus_tl's boosts are per tensor). */
    @Override
    public KernelTraits traits(KernelContext ctx) {
        return KernelTraits.perElement().withPasses(plus ? 1 : 0);
    }

    @Override
    public TensorKernel kernel(KernelContext ctx) {
        int base = ctx.baseIndex();
        int[] o = ctx.others();
        int n = o.length;
        float eps = (float) ctx.global("epsilon");
        double r = plus ? ctx.global("r") : 0, alpha = plus ? ctx.global("alpha") : 0;
        return new TensorKernel() {
            final long[] shared = new long[n], unique = new long[n];
            final float[] boost = new float[n];

            {
                Arrays.fill(boost, 1f);
            }


            @Override
            public void reduce(int pass, Chunk c) {
                float[] b = c.in[base];
                for (int j = 0; j < c.length; j++) {
                    int count = 0;
                    for (int i = 0; i < n; i++) if (Math.abs(c.in[o[i]][j] - b[j]) > eps) count++;
                    for (int i = 0; i < n; i++) {
                        if (Math.abs(c.in[o[i]][j] - b[j]) <= eps) continue;
                        if (count == 1) unique[i]++; else shared[i]++;
                    }
                }
            }

            @Override
            public void endPass(int pass) {
                for (int i = 0; i < n; i++) {
                    double rho = shared[i] / Math.max((double) unique[i], eps);
                    boost[i] = (float) (1 + r * Math.max(0, Math.min(alpha, rho)));
                }
            }

            @Override
            public void compute(Chunk c, float[] out) {
                float[] b = c.in[base];
                for (int j = 0; j < c.length; j++) {
                    int count = 0;
                    float sum = 0;
                    int last = -1;
                    for (int i = 0; i < n; i++) {
                        float d = c.in[o[i]][j] - b[j];
                        if (Math.abs(d) > eps) {
                            count++;
                            sum += d;
                            last = i;
                        }
                    }
                    if (count == 0) out[j] = b[j];
                    else if (count == 1) out[j] = b[j] + sum * boost[last];
                    else out[j] = b[j] + sum / count;
                }
            }
        };
    }
}
