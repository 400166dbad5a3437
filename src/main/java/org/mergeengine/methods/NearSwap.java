package org.mergeengine.methods;

import java.util.List;
import org.mergeengine.config.ConfigException;

/**
 * nearswap: per element w = clamp(t / max(|a - b|, 1e-6), 0, 1) and R = w·b + (1 - w)·a, with a the
 * base and b the other model: elements where the two nearly agree take the other model's value.
 */
public final class NearSwap implements MergeMethod {
    @Override public String name() { return "nearswap"; }
    @Override public List<ParamSpec> parameters() { return List.of(ParamSpec.requiredGlobal("t")); }
    @Override public BaseUse baseUse() { return BaseUse.REQUIRED; }
    @Override public ResultDType resultDType() { return ResultDType.PROMOTE; }
    @Override public String description() { return "takes the other model's values where it is close to the base"; }

    @Override
    public void checkInputs(int others, boolean hasBase, String yamlPath) {
        if (!hasBase) throw new ConfigException(yamlPath.isEmpty() ? "base_model" : yamlPath, "nearswap needs base_model");
        Linear.requireExactly("nearswap", 1, others, yamlPath.isEmpty() ? "models" : yamlPath);
    }

    @Override
    public KernelTraits traits(KernelContext ctx) {
        return KernelTraits.perElement();
    }

    @Override
    public TensorKernel kernel(KernelContext ctx) {
        int a = ctx.baseIndex(), b = ctx.others()[0];
        float t = (float) ctx.global("t");
        return (c, out) -> {
            float[] x = c.in[a], y = c.in[b];
            for (int j = 0; j < c.length; j++) {
                float w = t / Math.max(Math.abs(x[j] - y[j]), 1e-6f);
                w = Math.min(1f, Math.max(0f, w));
                out[j] = w * y[j] + (1 - w) * x[j];
            }
        };
    }
}
