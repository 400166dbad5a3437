package org.mergeengine.tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

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

    private static final ThreadLocal<ByteBuffer> BOUNCE =
            ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(4 * BLOCK).order(ByteOrder.nativeOrder()));

    /** {@code bits[bitsOff + i] = floatToRawIntBits(v[off + i])} for i in [0, len). */
    public static void toInts(float[] v, int off, int len, int[] bits, int bitsOff) {
        ByteBuffer b = BOUNCE.get();
        for (int s = 0; s < len; s += BLOCK) {
            int n = Math.min(BLOCK, len - s);
            b.clear();
            b.asFloatBuffer().put(v, off + s, n);
            b.asIntBuffer().get(bits, bitsOff + s, n);
        }
    }

    /** {@code v[off + i] = intBitsToFloat(bits[bitsOff + i])} for i in [0, len). */
    public static void toFloats(int[] bits, int bitsOff, int len, float[] v, int off) {
        ByteBuffer b = BOUNCE.get();
        for (int s = 0; s < len; s += BLOCK) {
            int n = Math.min(BLOCK, len - s);
            b.clear();
            b.asIntBuffer().put(bits, bitsOff + s, n);
            b.asFloatBuffer().get(v, off + s, n);
        }
    }
}
