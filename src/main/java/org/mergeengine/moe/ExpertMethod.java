package org.mergeengine.moe;

import java.util.List;
import org.mergeengine.formats.DType;
import org.mergeengine.methods.Chunk;
import org.mergeengine.methods.KernelContext;
import org.mergeengine.methods.KernelTraits;
import org.mergeengine.methods.MergeMethod;
import org.mergeengine.methods.ParamSpec;
import org.mergeengine.methods.TensorKernel;
import org.mergeengine.tensor.Convert;

/**
 * One expert output tensor: its pieces (each an expert's MLP matrix, laid end to end; one piece
 * for per-expert layouts) with each piece's noise and residual scale applied in the piece's own
 * dtype, as mergekit-moe does before casting to the output dtype: x + randn_like(x)·noise, then
 * (down_proj) times residual_scale, each step rounded to the source dtype.
 */
public final class ExpertMethod implements MergeMethod {
    /**
     * A piece of {@code numel} elements stored as {@code dtype}. {@code noiseStart} is the generator
     * state at this piece's draw, or null when it gets no noise; {@code residual} is NaN when unscaled.
     */
    public record Piece(long numel, DType dtype, TorchRandom noiseStart, double noise, double residual) {
        boolean changes() {
            return noiseStart != null || !Double.isNaN(residual);
        }
    }

    private final List<Piece> pieces;

    public ExpertMethod(List<Piece> pieces) {
        this.pieces = List.copyOf(pieces);
    }

    public List<Piece> pieces() {
        return pieces;
    }

    @Override public String name() { return "moe"; }
    @Override public List<ParamSpec> parameters() { return List.of(); }
    @Override public BaseUse baseUse() { return BaseUse.NONE; }
    @Override public ResultDType resultDType() { return ResultDType.SOURCE; }

    private boolean changes() {
        return pieces.stream().anyMatch(Piece::changes);
    }

    @Override
    public KernelTraits traits(KernelContext ctx) {
        if (changes()) return KernelTraits.streamed(); // the noise of an element depends on its position
        return pieces.size() == 1 ? KernelTraits.copyOf(0) : KernelTraits.perElement();
    }

    @Override
    public TensorKernel kernel(KernelContext ctx) {
        if (!changes()) return (c, out) -> System.arraycopy(c.in[0], c.offset, out, 0, c.length);
        return new NoiseKernel(pieces);
    }

    /** Not elementwise: the noise of an element depends on its position. */
    private static final class NoiseKernel implements TensorKernel {
        private final List<Piece> pieces;
        private final long[] starts;
        private final TorchRandom.NormalStream[] streams;

        NoiseKernel(List<Piece> pieces) {
            this.pieces = pieces;
            this.starts = new long[pieces.size() + 1];
            for (int i = 0; i < pieces.size(); i++) starts[i + 1] = starts[i] + pieces.get(i).numel();
            this.streams = new TorchRandom.NormalStream[pieces.size()];
        }

        @Override
        public void compute(Chunk c, float[] out) {
            int p = 0;
            for (int j = 0; j < c.length; j++) {
                long k = c.start + j;
                while (k >= starts[p + 1]) p++;
                while (k < starts[p]) p--;
                Piece pc = pieces.get(p);
                float v = c.in[0][c.offset + j];
                DType dt = pc.dtype();
                if (pc.noiseStart() != null) {
                    if (streams[p] == null) streams[p] = new TorchRandom.NormalStream(pc.noiseStart(), pc.numel(), reduced(dt));
                    float n = Convert.roundTo(dt, streams[p].get(k - starts[p]));
                    v = Convert.roundTo(dt, v + Convert.roundTo(dt, n * (float) pc.noise()));
                }
                if (!Double.isNaN(pc.residual())) v = Convert.roundTo(dt, v * (float) pc.residual());
                out[j] = v;
            }
        }
    }

    static boolean reduced(DType dt) {
        return dt == DType.BF16 || dt == DType.F16;
    }

    /** The model card's method line. */
    public static MergeMethod card() {
        return new MergeMethod() {
            @Override public String name() { return "moe"; }
            @Override public List<ParamSpec> parameters() { return List.of(); }
            @Override public BaseUse baseUse() { return BaseUse.REQUIRED; }
            @Override public ResultDType resultDType() { return ResultDType.BASE; }
            @Override public KernelTraits traits(KernelContext ctx) { throw new UnsupportedOperationException("the card's method runs no tensor"); }
            @Override public TensorKernel kernel(KernelContext ctx) { throw new UnsupportedOperationException("the card's method runs no tensor"); }
            @Override public String description() {
                return "a mixture of experts as mergekit-moe builds it: attention, norms and embeddings from the base, each expert's MLP as one expert, "
                        + "routers from the gate mode";
            }
        };
    }
}
