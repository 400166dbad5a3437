package org.mergeengine.methods;

import java.util.List;
import org.mergeengine.config.ConfigException;

/**
 * slerp: spherical interpolation from the base v0 towards the other model v1, on the whole tensor
 * as one flat vector. d = cos of the angle between v0 and v1; |d| > 0.9995 falls back to
 * (1-t) v0 + t v1; otherwise R = sin((1-t)θ)/sin θ · v0 + sin(tθ)/sin θ · v1 with θ = acos d.
 * One streaming pass gathers |v0|², |v1|² and v0·v1; the second applies the two coefficients.
 */
public final class Slerp implements MergeMethod {
    @Override public String name() { return "slerp"; }
    @Override public List<ParamSpec> parameters() { return List.of(ParamSpec.requiredGlobal("t")); }
    @Override public BaseUse baseUse() { return BaseUse.REQUIRED; }
    @Override public ResultDType resultDType() { return ResultDType.BASE; }
    @Override public String description() { return "spherical interpolation between the base and one other model"; }

    @Override
    public void checkInputs(int others, boolean hasBase, String yamlPath) {
        if (!hasBase) throw new ConfigException(yamlPath.isEmpty() ? "base_model" : yamlPath, "slerp needs base_model: it interpolates from the base (t = 0) to the other model (t = 1)");
        if (others > 1) throw new ConfigException(yamlPath, "slerp interpolates between exactly two models (the base and one other), found " + (others + 1));
    }

    @Override
    public KernelTraits traits(KernelContext ctx) {
        return ctx.inputCount() == 1 ? Copy.traits(0) : KernelTraits.streamed().withPasses(1);
    }

    @Override
    public TensorKernel kernel(KernelContext ctx) {
        if (ctx.inputCount() == 1) return Copy.of(0);
        return new Kernel(ctx.baseIndex(), ctx.others()[0], ctx.global("t"));
    }

    /** The kernel; its two coefficients are public so that another backend can apply them. */
    public static final class Kernel implements TensorKernel {
        private final int b, o;
        private final double t;
        private double n0, n1, dot;
        private float c0, c1;

        Kernel(int b, int o, double t) {
            this.b = b;
            this.o = o;
            this.t = t;
        }

        public int base() { return b; }
        public int other() { return o; }
        /** The coefficient of the base in R = c0 v0 + c1 v1 (valid after the reduction pass). */
        public float c0() { return c0; }
        public float c1() { return c1; }

        @Override
        public void reduce(int pass, Chunk c) {
            float[] v0 = c.in[b], v1 = c.in[o];
            double a = 0, bb = 0, d = 0;
            for (int j = c.offset; j < c.offset + c.length; j++) {
                a += v0[j] * (double) v0[j];
                bb += v1[j] * (double) v1[j];
                d += v0[j] * (double) v1[j];
            }
            n0 += a;
            n1 += bb;
            dot += d;
        }

        @Override
        public void endPass(int pass) {
            double l0 = Math.sqrt(n0), l1 = Math.sqrt(n1);
            double d = dot / ((l0 > 1e-8 ? l0 : 1) * (l1 > 1e-8 ? l1 : 1));
            if (Math.abs(d) > 0.9995) {
                c0 = (float) (1 - t);
                c1 = (float) t;
            } else {
                double theta = Math.acos(d), s = Math.sin(theta);
                c0 = (float) (Math.sin((1 - t) * theta) / s);
                c1 = (float) (Math.sin(t * theta) / s);
            }
        }

        @Override
        public void compute(Chunk c, float[] out) {
            float[] v0 = c.in[b], v1 = c.in[o];
            int off = c.offset, len = c.length;
            // Two loops, because one that reads at an offset and writes at 0 stays scalar: the JIT
            // cannot rule out that out overlaps an input. Streamed chunks start at 0.
            if (off == 0) {
                for (int j = 0; j < len; j++) out[j] = c0 * v0[j] + c1 * v1[j];
            } else {
                for (int j = 0; j < len; j++) out[j] = c0 * v0[off + j] + c1 * v1[off + j];
            }
        }
    }
}
