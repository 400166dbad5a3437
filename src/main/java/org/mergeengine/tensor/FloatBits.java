package org.mergeengine.tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;

/**
 * Bulk copies between floats and their bit patterns ({@link Float#floatToRawIntBits} and back).
 *
 * <p>Why in bulk: the JIT of Java 17 and 25 vectorises no loop that moves bits between a float and
 * an int, so such a loop costs a scalar step per element. Bits copied through a direct buffer take
 * two memory copies instead, and the int or float loops around them vectorise.
 */
public final class FloatBits {
    private FloatBits() {}

    /** Elements per copy through the per-thread buffer (256 KB). */
    private static final int BLOCK = 1 << 16;

    /** A thread's direct buffer with its two views, made once: new views per call were garbage enough to grow G1's young generation. */
    private static final class Bounce {
        final ByteBuffer bytes = ByteBuffer.allocateDirect(4 * BLOCK).order(ByteOrder.nativeOrder());
        final FloatBuffer floats = bytes.asFloatBuffer();
        final IntBuffer ints = bytes.asIntBuffer();
    }

    private static final ThreadLocal<Bounce> BOUNCE = ThreadLocal.withInitial(Bounce::new);

    /** {@code bits[bitsOff + i] = floatToRawIntBits(v[off + i])} for i in [0, len). */
    public static void toInts(float[] v, int off, int len, int[] bits, int bitsOff) {
        Bounce b = BOUNCE.get();
        for (int s = 0; s < len; s += BLOCK) {
            int n = Math.min(BLOCK, len - s);
            b.floats.put(0, v, off + s, n);
            b.ints.get(0, bits, bitsOff + s, n);
        }
    }

    /** {@code v[off + i] = intBitsToFloat(bits[bitsOff + i])} for i in [0, len). */
    public static void toFloats(int[] bits, int bitsOff, int len, float[] v, int off) {
        Bounce b = BOUNCE.get();
        for (int s = 0; s < len; s += BLOCK) {
            int n = Math.min(BLOCK, len - s);
            b.ints.put(0, bits, bitsOff + s, n);
            b.floats.get(0, v, off + s, n);
        }
    }
}
