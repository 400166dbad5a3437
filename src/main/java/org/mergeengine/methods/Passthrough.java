package org.mergeengine.methods;

import java.util.List;
import org.mergeengine.config.ConfigException;

/** passthrough: the single source tensor, times its {@code scale} when one is set (frankenmerges). */
public final class Passthrough implements MergeMethod {
    @Override public String name() { return "passthrough"; }
    @Override public List<ParamSpec> parameters() { return List.of(ParamSpec.perModel("scale", Double.NaN)); }
    @Override public BaseUse baseUse() { return BaseUse.NONE; }
    @Override public ResultDType resultDType() { return ResultDType.SOURCE; }
    @Override public String description() { return "copies tensors from one source per slice (layer stacking), optionally scaled"; }

    @Override
    public void checkInputs(int others, boolean hasBase, String yamlPath) {
        if (others != 1) {
            throw new ConfigException(yamlPath, "passthrough takes exactly one model per slice, found " + others
                    + "; stack models with several slices, one source each");
        }
    }

    @Override
    public KernelTraits traits(KernelContext ctx) {
        return unscaled(ctx) ? Copy.traits(0) : KernelTraits.perElement();
    }

    private static boolean unscaled(KernelContext ctx) {
        double s = ctx.model("scale", 0);
        return Double.isNaN(s) || s == 1.0;
    }

    @Override
    public TensorKernel kernel(KernelContext ctx) {
        if (unscaled(ctx)) return Copy.of(0);
        float f = (float) ctx.model("scale", 0);
        return (c, out) -> {
            float[] x = c.in[0];
            for (int j = 0; j < c.length; j++) out[j] = x[j] * f;
        };
    }
}
