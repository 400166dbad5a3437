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
    public TensorKernel kernel(KernelContext ctx) {
        double s = ctx.model("scale", 0);
        if (Double.isNaN(s) || s == 1.0) {
            return new TensorKernel() {
                @Override public void compute(Chunk c, float[] out) { System.arraycopy(c.in[0], 0, out, 0, c.length); }
                @Override public boolean isIdentity() { return true; }
                @Override public boolean elementwise() { return true; }
            };
        }
        float f = (float) s;
        return TensorKernel.ofElementwise((c, out) -> {
            float[] x = c.in[0];
            for (int j = 0; j < c.length; j++) out[j] = x[j] * f;
        });
    }
}
