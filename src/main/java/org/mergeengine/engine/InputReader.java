package org.mergeengine.engine;

import java.nio.ByteBuffer;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.SafetensorsFile;
import org.mergeengine.formats.TensorInfo;
import org.mergeengine.plan.PlannedTensor;
import org.mergeengine.tensor.Convert;

/**
 * Reads a run of elements of an input tensor as float32: through its (possibly cropped) view, and
 * rounded to the config's dtype when one is set (mergekit casts on load).
 */
final class InputReader {
    private InputReader() {}

    /** Elements {@code [start, start+len)} of the input's view, flat row-major, into {@code dst[0..len)}. */
    static void read(PlannedTensor.Input in, long start, int len, float[] dst) {
        TensorInfo info = in.source().info();
        SafetensorsFile file = in.source().file();
        DType dt = info.dtype();
        int es = dt.size();
        if (!in.cropped()) {
            readRun(file, info, start * es, len, dst, 0);
        } else {
            long viewCols = in.view()[1];
            long storedCols = info.shape()[1];
            int done = 0;
            while (done < len) {
                long e = start + done;
                long row = e / viewCols, col = e % viewCols;
                int run = (int) Math.min(len - done, viewCols - col);
                readRun(file, info, (row * storedCols + col) * es, run, dst, done);
                done += run;
            }
        }
        DType cast = in.castTo();
        if (cast != null && cast != dt && narrower(cast, dt)) {
            for (int i = 0; i < len; i++) dst[i] = Convert.roundTo(cast, dst[i]);
        }
    }

    private static void readRun(SafetensorsFile file, TensorInfo info, long byteOffset, int count, float[] dst, int dstOff) {
        int es = info.dtype().size();
        int maxElems = SafetensorsFile.MAX_READ / es;
        int done = 0;
        while (done < count) {
            int n = Math.min(count - done, maxElems);
            ByteBuffer b = file.read(info, byteOffset + (long) done * es, n * es);
            Convert.decode(info.dtype(), b, dst, dstOff + done, n);
            done += n;
        }
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
