package org.mergeengine.methods;

import java.util.List;
import org.mergeengine.config.ConfigException;

/** linear: R = sum_i w_i X_i, divided by sum_i w_i when normalize (the default). */
public final class Linear implements MergeMethod {
    @Override public String name() { return "linear"; }
    @Override public List<ParamSpec> parameters() { return List.of(ParamSpec.requiredPerModel("weight"), ParamSpec.global("normalize", 1.0)); }
    @Override public BaseUse baseUse() { return BaseUse.ORDINARY; }
    @Override public ResultDType resultDType() { return ResultDType.PROMOTE; }
    @Override public String description() { return "weighted average of the models"; }

    @Override
    public void checkParameters(KernelContext ctx) {
        if (!ctx.flag("normalize")) return;
        double sum = 0;
        for (int i = 0; i < ctx.inputCount(); i++) sum += ctx.model("weight", i);
        if (Math.abs(sum) < 1e-12) {
            throw ctx.invalid("weight", -1, "the weights sum to zero, so normalizing divides by zero; change the weights or set normalize: false");
        }
    }

    @Override
    public KernelTraits traits(KernelContext ctx) {
        return KernelTraits.perElement();
    }

    @Override
    public TensorKernel kernel(KernelContext ctx) {
        int n = ctx.inputCount();
        float[] w = new float[n];
        double sum = 0;
        for (int i = 0; i < n; i++) sum += ctx.model("weight", i);
        double div = ctx.flag("normalize") ? sum : 1.0;
        for (int i = 0; i < n; i++) w[i] = (float) (ctx.model("weight", i) / div);
        return (c, out) -> {
            float[] x0 = c.in[0];
            float w0 = w[0];
            for (int j = 0; j < c.length; j++) out[j] = w0 * x0[j];
            for (int i = 1; i < n; i++) {
                float[] x = c.in[i];
                float wi = w[i];
                for (int j = 0; j < c.length; j++) out[j] += wi * x[j];
            }
        };
    }

    static void requireExactly(String method, int want, int others, String yamlPath) {
        if (others != want) throw new ConfigException(yamlPath, method + " merges exactly " + want + " model(s) besides the base, found " + others);
    }
}
