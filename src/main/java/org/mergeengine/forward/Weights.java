package org.mergeengine.forward;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.FormatException;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.TensorFile;
import org.mergeengine.formats.TensorInfo;
import org.mergeengine.tensor.Convert;

/**
 * Reads single tensors of a model as float32 (from bf16, f16 or f32), in bounded chunks, so that
 * only the tensor itself is ever held whole. A tensor with a LoRA update gets W + s·B·A, rounded to
 * its stored dtype as a merged checkpoint would hold it.
 */
final class Weights {
    /** Bytes per read: large enough for few system calls, small beside one layer. */
    private static final int CHUNK = 4 << 20;

    private final ModelFolder model;
    private final ByteBuffer buf = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
    /** LoRA factors of the current layer's tensors: [L (rows·r, scale folded in), R (r·cols)]. */
    private final Map<ModelFolder.LowRank, float[][]> factors = new HashMap<>();

    Weights(ModelFolder model) {
        this.model = model;
    }

    boolean has(String name) {
        return model.tensor(name) != null;
    }

    ModelFolder.Located locate(String name, long... shape) {
        ModelFolder.Located l = model.tensor(name);
        if (l == null) throw new FormatException(model.dir() + ": tensor '" + name + "' is missing; the forward pass needs it");
        TensorInfo t = l.info();
        if (t.dtype() != DType.BF16 && t.dtype() != DType.F16 && t.dtype() != DType.F32) {
            throw new FormatException(l.file().path() + ": tensor '" + name + "' is " + t.dtype().safetensorsName()
                    + "; the forward pass reads BF16, F16 and F32 weights");
        }
        if (!Arrays.equals(t.shape(), shape)) {
            throw new FormatException(l.file().path() + ": tensor '" + name + "' has shape " + t.shapeString() + ", but config.json implies "
                    + Arrays.toString(shape));
        }
        return l;
    }

    /** Elements [start, start+count) of a tensor, flat, into dst[off..]. */
    synchronized void read(ModelFolder.Located l, long start, int count, float[] dst, int off) {
        TensorInfo t = l.info();
        int size = t.dtype().size();
        int per = CHUNK / size;
        for (int done = 0; done < count; ) {
            int n = Math.min(per, count - done);
            buf.clear().limit(n * size);
            l.file().readInto(t, (start + done) * size, buf);
            buf.flip();
            Convert.decode(t.dtype(), buf, dst, off + done, n);
            done += n;
        }
        if (l.delta() != null) addLowRank(l, start, count, dst, off);
    }

    private void addLowRank(ModelFolder.Located l, long start, int count, float[] dst, int off) {
        ModelFolder.LowRank d = l.delta();
        float[][] f = factors.computeIfAbsent(d, Weights::loadFactors);
        float[] left = f[0], right = f[1];
        int rank = d.rank();
        int cols = (int) l.info().shape()[1];
        for (int k = 0; k < count; k++) {
            long e = start + k;
            int row = (int) (e / cols), col = (int) (e % cols);
            float acc = 0;
            for (int q = 0; q < rank; q++) acc += left[row * rank + q] * right[q * cols + col];
            dst[off + k] = Convert.roundTo(l.info().dtype(), dst[off + k] + acc);
        }
    }

    /** L and R of W += L·R: B·A for a Linear layer, Aᵀ·Bᵀ for an embedding (or fan_in_fan_out). */
    private static float[][] loadFactors(ModelFolder.LowRank d) {
        TensorInfo a = d.a(), b = d.b();
        float[] av = whole(d.file(), a), bv = whole(d.file(), b);
        int rank = d.rank();
        float[] left, right;
        if (!d.transposed()) {
            left = bv;   // B [rows, r]
            right = av;  // A [r, cols]
        } else {
            int rows = (int) a.shape()[1], cols = (int) b.shape()[0];
            left = new float[rows * rank];
            for (int q = 0; q < rank; q++) for (int i = 0; i < rows; i++) left[i * rank + q] = av[q * rows + i];
            right = new float[rank * cols];
            for (int j = 0; j < cols; j++) for (int q = 0; q < rank; q++) right[q * cols + j] = bv[j * rank + q];
        }
        for (int i = 0; i < left.length; i++) left[i] *= d.scale();
        return new float[][] {left, right};
    }

    private static float[] whole(TensorFile f, TensorInfo t) {
        int n = Math.toIntExact(t.numel());
        float[] v = new float[n];
        ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(t.byteSize())).order(ByteOrder.LITTLE_ENDIAN);
        f.readInto(t, 0, b);
        b.flip();
        Convert.decode(t.dtype(), b, v, 0, n);
        return v;
    }

    /** Forgets LoRA factors read so far (they belong to the layer just dropped). */
    synchronized void dropFactors() {
        factors.clear();
    }

    /** A 1-D tensor of {@code n} elements. */
    float[] vector(String name, int n) {
        ModelFolder.Located l = locate(name, n);
        float[] v = new float[n];
        read(l, 0, n, v, 0);
        return v;
    }

    /** The bias of a projection if the model has one (Qwen2's q/k/v), else null. */
    float[] optionalVector(String name, int n) {
        return has(name) ? vector(name, n) : null;
    }

    /** A [out, in] weight, stored transposed ([in][out]) for {@link MatMul}. */
    Linear linear(String name, int out, int in, float[] bias) {
        return rows(locate(name, out, in), 0, out, in, bias);
    }

    /** Rows [r0, r0+out) of a [*, in] weight, transposed, as a projection onto those rows. */
    Linear rows(ModelFolder.Located l, int r0, int out, int in, float[] bias) {
        float[] wt = new float[Math.multiplyExact(out, in)];
        int rowsPer = Math.max(1, Math.min(64, CHUNK / 4 / in));
        float[] tmp = new float[rowsPer * in];
        for (int o0 = 0; o0 < out; o0 += rowsPer) {
            int rows = Math.min(rowsPer, out - o0);
            read(l, (long) (r0 + o0) * in, rows * in, tmp, 0);
            for (int i = 0; i < in; i++) {
                int base = i * out + o0;
                for (int r = 0; r < rows; r++) wt[base + r] = tmp[r * in + i];
            }
        }
        return new Linear(wt, in, out, bias);
    }
}
