package org.mergeengine.engine;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.SafetensorsFile;
import org.mergeengine.formats.TensorFile;
import org.mergeengine.formats.TensorInfo;
import org.mergeengine.plan.PermutedRows;
import org.mergeengine.plan.PlannedTensor;
import org.mergeengine.tensor.Convert;

/**
 * Reads a run of elements of an input tensor as float32: through its (possibly cropped) view, and
 * rounded to the config's dtype when one is set (mergekit casts on load).
 */
final class InputReader {
    /** LoRA factors, read once per job: L [rows, r] and R [r, cols], the scale folded into L. */
    private final Map<ModelFolder.LowRank, float[][]> factors = new ConcurrentHashMap<>();

    /** Elements {@code [start, start+len)} of the input's view, flat row-major, into {@code dst[0..len)}. */
    void read(PlannedTensor.Input in, long start, int len, float[] dst) {
        // Stored bf16 and f16 values say on decoding whether any is NaN or infinite; the floats are
        // counted only otherwise (other types, rebuilt vocabulary rows) or when some are.
        boolean finite;
        if (in.rows() != null) {
            readPermuted(in.rows(), start, len, dst);
            finite = false;
        } else {
            finite = readStored(in.source(), in.view(), start, len, dst);
        }
        if (!finite) NonFinite.seen(in, start, len, dst);
        DType cast = in.castTo();
        DType dt = in.source().info().dtype();
        if (cast != null && cast != dt && narrower(cast, dt)) {
            for (int i = 0; i < len; i++) dst[i] = Convert.roundTo(cast, dst[i]);
        }
    }

    private final Map<PermutedRows, float[]> padRows = new ConcurrentHashMap<>();

    private void readPermuted(PermutedRows p, long start, int len, float[] dst) {
        int cols = (int) p.cols();
        float[] row = new float[cols];
        int done = 0;
        while (done < len) {
            long e = start + done;
            int r = (int) (e / cols), c = (int) (e % cols);
            int run = Math.min(len - done, cols - c);
            if (r >= p.padFrom()) {
                float[] mean = padRows.computeIfAbsent(p, this::meanRow);
                System.arraycopy(mean, c, dst, done, run);
            } else {
                buildRow(p, r, row);
                System.arraycopy(row, c, dst, done, run);
            }
            done += run;
        }
    }

    private void buildRow(PermutedRows p, int r, float[] row) {
        Arrays.fill(row, 0f);
        int[] srcs = p.rowSources()[r], ids = p.rowIds()[r];
        if (srcs.length == 0) return;
        float[] tmp = new float[row.length];
        for (int k = 0; k < srcs.length; k++) {
            ModelFolder.Located l = p.sources().get(srcs[k]);
            readStored(l, l.info().shape(), (long) ids[k] * row.length, row.length, tmp);
            for (int j = 0; j < row.length; j++) row[j] += tmp[j];
        }
        if (srcs.length > 1) for (int j = 0; j < row.length; j++) row[j] /= srcs.length;
    }

    /** Padding rows: the mean of the real rows (a vocabulary-expansion default that keeps logits neutral). */
    private float[] meanRow(PermutedRows p) {
        int cols = (int) p.cols();
        double[] acc = new double[cols];
        float[] row = new float[cols];
        for (int r = 0; r < p.padFrom(); r++) {
            buildRow(p, r, row);
            for (int j = 0; j < cols; j++) acc[j] += row[j];
        }
        float[] mean = new float[cols];
        for (int j = 0; j < cols; j++) mean[j] = (float) (acc[j] / Math.max(1, p.padFrom()));
        return mean;
    }

    /**
     * Reads a view of a stored tensor (LoRA update included), before any cast; returns true when
     * the stored values are known to be finite.
     */
    boolean readStored(ModelFolder.Located src, long[] view, long start, int len, float[] dst) {
        TensorInfo info = src.info();
        long[] stored = info.shape();
        boolean cropped = stored.length == 2 && view.length == 2 && (stored[0] != view[0] || stored[1] != view[1]);
        boolean finite = readRaw(src, view, cropped, start, len, dst);
        if (src.delta() != null) {
            finite = false; // the floats count, with the update in them
            addLowRank(src.delta(), view[1], start, len, dst);
            // a PEFT-merged checkpoint would store W + s·BA in the base's dtype
            if (info.dtype() != DType.F32 && info.dtype().isFloating()) {
                for (int i = 0; i < len; i++) dst[i] = Convert.roundTo(info.dtype(), dst[i]);
            }
        }
        return finite;
    }

    private void addLowRank(ModelFolder.LowRank d, long viewCols, long start, int len, float[] dst) {
        float[][] lr = factors.computeIfAbsent(d, InputReader::loadFactors);
        float[] l = lr[0], r = lr[1];
        int rank = d.rank();
        int cols = (int) lr[2][0];
        int done = 0;
        while (done < len) {
            long e = start + done;
            int row = (int) (e / viewCols), col = (int) (e % viewCols);
            int run = (int) Math.min(len - done, viewCols - col);
            for (int k = 0; k < rank; k++) {
                float lk = l[row * rank + k];
                if (lk == 0) continue;
                int rb = k * cols + col;
                for (int j = 0; j < run; j++) dst[done + j] += lk * r[rb + j];
            }
            done += run;
        }
    }

    private static float[][] loadFactors(ModelFolder.LowRank d) {
        TensorInfo a = d.a(), b = d.b();
        float[] av = whole(d.file(), a), bv = whole(d.file(), b);
        int rank = d.rank();
        int aCols = (int) a.shape()[1], bRows = (int) b.shape()[0];
        float[] l, r;
        int cols;
        if (!d.transposed()) { // W[out,in] += s · B[out,r] · A[r,in]
            l = bv;
            r = av;
            cols = aCols;
        } else {              // W[in,out] += s · (B·A)^T = A^T[in,r] · B^T[r,out]
            l = new float[aCols * rank];
            for (int k = 0; k < rank; k++) for (int i = 0; i < aCols; i++) l[i * rank + k] = av[k * aCols + i];
            r = new float[rank * bRows];
            for (int j = 0; j < bRows; j++) for (int k = 0; k < rank; k++) r[k * bRows + j] = bv[j * rank + k];
            cols = bRows;
        }
        for (int i = 0; i < l.length; i++) l[i] *= d.scale();
        return new float[][] {l, r, {cols}};
    }

    static float[] whole(TensorFile f, TensorInfo t) {
        float[] v = new float[(int) t.numel()];
        readRun(f, t, 0, v.length, v, 0);
        return v;
    }

    private static boolean readRaw(ModelFolder.Located src, long[] view, boolean cropped, long start, int len, float[] dst) {
        TensorInfo info = src.info();
        TensorFile file = src.file();
        int es = info.dtype().size();
        if (!cropped) return readRun(file, info, start * es, len, dst, 0);
        boolean finite = true;
        long viewCols = view[1];
        long storedCols = info.shape()[1];
        int done = 0;
        while (done < len) {
            long e = start + done;
            long row = e / viewCols, col = e % viewCols;
            int run = (int) Math.min(len - done, viewCols - col);
            finite &= readRun(file, info, (row * storedCols + col) * es, run, dst, done);
            done += run;
        }
        return finite;
    }

    private static final ThreadLocal<ByteBuffer[]> IO_BUFFER = ThreadLocal.withInitial(() -> new ByteBuffer[1]);

    private static boolean readRun(TensorFile file, TensorInfo info, long byteOffset, int count, float[] dst, int dstOff) {
        int es = info.dtype().size();
        int maxElems = SafetensorsFile.MAX_READ / es;
        int done = 0;
        boolean finite = true;
        while (done < count) {
            int n = Math.min(count - done, maxElems);
            ByteBuffer b;
            if (file.mapped()) {
                b = file.read(info, byteOffset + (long) done * es, n * es);
            } else {
                // Positional reads land in a per-thread direct buffer: one copy from the page cache, none on the heap.
                ByteBuffer[] h = IO_BUFFER.get();
                if (h[0] == null || h[0].capacity() < n * es) h[0] = ByteBuffer.allocateDirect(Math.max(n * es, 1 << 20)).order(ByteOrder.LITTLE_ENDIAN);
                b = h[0];
                b.clear().limit(n * es);
                file.readInto(info, byteOffset + (long) done * es, b);
                b.flip();
            }
            finite &= Convert.decodeFinite(info.dtype(), b, dst, dstOff + done, n);
            done += n;
        }
        return finite;
    }

    /** Raw bytes of an uncropped input (for copies that need no conversion). */
    static ByteBuffer readBytes(PlannedTensor.Input in, long byteOffset, int length) {
        return in.source().file().read(in.source().info(), byteOffset, length);
    }

    /** Whether rounding to {@code cast} can change a value stored as {@code stored}. */
    static boolean narrower(DType cast, DType stored) {
        if (!cast.isFloating()) return true;
        if (cast.size() < stored.size()) return true;
        return cast.size() == stored.size() && cast != stored; // bf16 <-> f16 differ in range and precision
    }
}
