package org.mergeengine.tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.IntBuffer;
import java.nio.ShortBuffer;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.SafetensorsWriter;

/**
 * Conversions between stored element types and float32. Narrowing always rounds to nearest,
 * ties to even, as torch does, so a merge computed in float32 and stored once matches a
 * reference computed in higher precision to within one rounding.
 */
public final class Convert {
    private Convert() {}

    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    public static short floatToBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x40); // keep NaN a quiet NaN
        }
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    public static float f16ToFloat(short h) {
        int bits = h & 0xffff;
        int sign = (bits & 0x8000) << 16;
        int exp = (bits >>> 10) & 0x1f;
        int mant = bits & 0x3ff;
        if (exp == 0x1f) {
            return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
        }
        if (exp == 0) {
            if (mant == 0) return Float.intBitsToFloat(sign);
            // subnormal: value = mant * 2^-24
            float v = mant * 0x1p-24f;
            return sign != 0 ? -v : v;
        }
        return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
    }

    public static short floatToF16(float f) {
        int bits = Float.floatToRawIntBits(f);
        int sign = (bits >>> 16) & 0x8000;
        int abs = bits & 0x7fffffff;
        if (abs > 0x7f800000) return (short) (sign | 0x7e00);         // NaN
        if (abs >= 0x477ff000) return (short) (sign | 0x7c00);        // rounds to >= 65520: inf
        if (abs < 0x38800000) {                                          // below the smallest normal 2^-14
            // subnormal or zero: round abs/2^-24 to an integer, ties to even
            float scaled = Float.intBitsToFloat(abs) * 0x1p24f;
            int m = (int) Math.rint(scaled);
            return (short) (sign | m);
        }
        int exp = ((abs >>> 23) - 112);
        int mant = abs & 0x7fffff;
        int half = (exp << 10) | (mant >>> 13);
        int rest = mant & 0x1fff;
        if (rest > 0x1000 || (rest == 0x1000 && (half & 1) != 0)) half++;
        return (short) (sign | half);
    }

    private static final float[] E4M3 = new float[256];
    private static final float[] E5M2 = new float[256];

    static {
        for (int i = 0; i < 256; i++) {
            E5M2[i] = f16ToFloat((short) (i << 8));
            int sign = i & 0x80;
            int exp = (i >>> 3) & 0xf;
            int mant = i & 7;
            float v;
            if (exp == 0xf && mant == 7) v = Float.NaN;               // e4m3fn: no infinities, one NaN pattern
            else if (exp == 0) v = mant * 0x1p-9f;                      // subnormal: mant/8 * 2^-6
            else v = (1 + mant / 8f) * (float) Math.pow(2, exp - 7);
            E4M3[i] = sign != 0 ? -v : v;
        }
    }

    public static float f8e4m3ToFloat(byte b) { return E4M3[b & 0xff]; }
    public static float f8e5m2ToFloat(byte b) { return E5M2[b & 0xff]; }

    public static byte floatToF8e4m3(float f) {
        if (Float.isNaN(f)) return 0x7f;
        int sign = f < 0 || (f == 0 && 1 / f < 0) ? 0x80 : 0;
        float a = Math.abs(f);
        if (a > 464f) return (byte) (sign | 0x7f); // beyond max 448 plus half an ulp: NaN, as torch's e4m3fn cast
        return (byte) (sign | nearestCode(E4M3, a, 0x7e));
    }

    public static byte floatToF8e5m2(float f) {
        if (Float.isNaN(f)) return (byte) 0x7f;
        int sign = f < 0 || (f == 0 && 1 / f < 0) ? 0x80 : 0;
        float a = Math.abs(f);
        if (a >= 61440f) return (byte) (sign | 0x7c); // rounds past max 57344: inf
        return (byte) (sign | nearestCode(E5M2, a, 0x7b));
    }

    /** Positive codes 0..maxCode are ordered by value; pick the nearest, ties to the even code. */
    private static int nearestCode(float[] table, float a, int maxCode) {
        int lo = 0, hi = maxCode;
        while (lo < hi) {
            int mid = (lo + hi + 1) >>> 1;
            if (table[mid] <= a) lo = mid; else hi = mid - 1;
        }
        if (lo == maxCode) return lo;
        float below = table[lo], above = table[lo + 1];
        float dBelow = a - below, dAbove = above - a;
        if (dBelow < dAbove) return lo;
        if (dAbove < dBelow) return lo + 1;
        return (lo & 1) == 0 ? lo : lo + 1;
    }

    /** A whole tensor held in memory, {@code values} encoded in {@code dtype}, for {@link SafetensorsWriter#writeFile}. */
    public static SafetensorsWriter.TensorData tensorData(String name, DType dtype, long[] shape, float[] values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * dtype.size());
        encode(dtype, values, 0, values.length, b);
        return new SafetensorsWriter.TensorData(name, dtype, shape, b.array());
    }

    /** Rounds a float32 value to the precision of {@code type}, keeping it a float (the "cast on load"). */
    public static float roundTo(DType type, float v) {
        switch (type) {
            case BF16: return bf16ToFloat(floatToBf16(v));
            case F16: return f16ToFloat(floatToF16(v));
            case F8_E4M3: return f8e4m3ToFloat(floatToF8e4m3(v));
            case F8_E5M2: return f8e5m2ToFloat(floatToF8e5m2(v));
            case F32: case F64: return v;
            default: return (float) Math.rint(v);
        }
    }

    private static final ThreadLocal<short[][]> SCRATCH = ThreadLocal.withInitial(() -> new short[1][0]);

    /** A per-thread scratch array of at least n shorts (conversions run on a few threads, over and over). */
    private static short[] shorts(int n) {
        short[][] h = SCRATCH.get();
        if (h[0].length < n) h[0] = new short[Math.max(n, 1 << 16)];
        return h[0];
    }

    /** Per-thread scratch of the split bf16 conversions (tile-sized, reused for every tile). */
    private static final class Split {
        int[] pairs = new int[0], even = new int[0], odd = new int[0];

        Split ensure(int count) {
            int h = count >> 1;
            if (even.length < h) {
                pairs = new int[h];
                even = new int[h];
                odd = new int[h];
            }
            return this;
        }
    }

    private static final ThreadLocal<Split> SPLIT = ThreadLocal.withInitial(Split::new);


    /**
     * Decodes an even {@code count} of bf16 elements at the buffer's position, split by parity:
     * {@code out[0..count/2)} gets elements 0, 2, 4, ... and {@code out[count/2..count)} elements
     * 1, 3, 5, ... The bytes are read as little-endian whatever the buffer's order; its position
     * is not moved.
     *
     * <p>Why split: neither Java 17's nor 25's JIT vectorises a loop that moves bits between int
     * and float, so {@link #decode} costs a scalar step per element. Here a pair of bf16 values is
     * one int, its halves go to two int arrays in shift and mask loops the JIT does vectorise, and
     * ints become floats in bulk ({@link FloatBits}). A kernel whose output element
     * depends only on the same element of its inputs gives the same values in this order, and
     * {@link #encodeBf16Split} puts them back.
     *
     * @return whether every value decoded is finite (no NaN, no infinity)
     */
    public static boolean decodeBf16Split(ByteBuffer src, float[] out, int count) {
        if ((count & 1) != 0) throw new IllegalArgumentException("split bf16 decoding needs an even count, got " + count);
        int h = count >> 1;
        Split s = SPLIT.get().ensure(count);
        int[] pairs = s.pairs, even = s.even, odd = s.odd;
        (src.order() == ByteOrder.LITTLE_ENDIAN ? src : src.duplicate().order(ByteOrder.LITTLE_ENDIAN)).asIntBuffer().get(pairs, 0, h);
        // An exponent of all ones (NaN or infinity) carries into its half's top bit when 0x80 is
        // added: one OR over the pairs, in cache, instead of a scan of the bytes on their own.
        int carries = 0;
        for (int i = 0; i < h; i++) carries |= (pairs[i] & 0x7f807f80) + 0x00800080;
        for (int i = 0; i < h; i++) even[i] = pairs[i] << 16;
        for (int i = 0; i < h; i++) odd[i] = pairs[i] & 0xffff0000;
        FloatBits.toFloats(even, 0, h, out, 0);
        FloatBits.toFloats(odd, 0, h, out, h);
        return (carries & 0x80008000) == 0;
    }

    /**
     * Encodes {@code count} (even) floats laid out as {@link #decodeBf16Split} leaves them into bf16
     * in element order at the buffer's position (little-endian), advancing it. Rounds exactly as
     * {@link #floatToBf16}, with the NaN case chosen by a mask instead of a branch so that the loop
     * vectorises.
     */
    public static void encodeBf16Split(float[] in, int count, ByteBuffer dst) {
        if ((count & 1) != 0) throw new IllegalArgumentException("split bf16 encoding needs an even count, got " + count);
        int h = count >> 1;
        Split s = SPLIT.get().ensure(count);
        int[] pairs = s.pairs, even = s.even, odd = s.odd;
        FloatBits.toInts(in, 0, h, even, 0);
        FloatBits.toInts(in, h, h, odd, 0);
        roundToBf16(even, h);
        roundToBf16(odd, h);
        for (int i = 0; i < h; i++) pairs[i] = even[i] | (odd[i] << 16);
        ByteBuffer b = dst.order(ByteOrder.LITTLE_ENDIAN);
        int p = b.position();
        b.asIntBuffer().put(pairs, 0, h);
        b.position(p + 2 * count);
    }

    /** Elements per block of the element-order bf16 conversions, whose scratch then stays in the first-level caches. */
    private static final int PAIRED_BLOCK = 8192;

    /** Per-thread scratch of the element-order bf16 conversions, one block's worth. */
    private static final class Paired {
        final int[] pairs = new int[PAIRED_BLOCK / 2], bits = new int[PAIRED_BLOCK];
        final short[] halves = new short[PAIRED_BLOCK];
    }

    private static final ThreadLocal<Paired> PAIRED = ThreadLocal.withInitial(Paired::new);

    /**
     * bf16 to float in element order, for kernels that need it (TIES's selection, slerp, ...).
     * As in {@link #decodeBf16Split}, a pair of values is read as one int, because the JIT
     * vectorises int loops but not a move of bits from int to float: the pair's halves are
     * widened in place (two stores per pair, still far cheaper than a scalar conversion per
     * element) and become floats in bulk. The buffer is little-endian, at the first element.
     *
     * @return whether every value is finite
     */
    private static boolean decodeBf16(ByteBuffer b, float[] out, int outOff, int count) {
        Paired s = PAIRED.get();
        int[] pairs = s.pairs, bits = s.bits;
        int p = b.position(), carries = 0, done = 0;
        IntBuffer ints = b.asIntBuffer();
        for (int n; count - done >= 2; done += n) {
            n = Math.min(PAIRED_BLOCK, count - done) & ~1;
            int h = n >> 1;
            ints.get(done >> 1, pairs, 0, h);
            for (int i = 0; i < h; i++) carries |= (pairs[i] & 0x7f807f80) + 0x00800080;
            for (int i = 0; i < h; i++) {
                int q = pairs[i];
                bits[2 * i] = q << 16;
                bits[2 * i + 1] = q & 0xffff0000;
            }
            FloatBits.toFloats(bits, 0, n, out, outOff + done);
        }
        if (done < count) {
            short last = b.getShort(p + 2 * done);
            out[outOff + done] = bf16ToFloat(last);
            carries |= (last & 0x7f80) + 0x0080;
        }
        return (carries & 0x80008000) == 0;
    }

    /**
     * float to bf16 in element order at the buffer's position (little-endian), without moving it:
     * floats become ints in bulk, are rounded in an int loop and narrowed to shorts in another,
     * all of which the JIT vectorises, where a scalar step per element does not.
     */
    private static void encodeBf16(float[] in, int inOff, int count, ByteBuffer b) {
        Paired s = PAIRED.get();
        int[] bits = s.bits;
        short[] halves = s.halves;
        ShortBuffer shorts = b.asShortBuffer();
        for (int n, done = 0; done < count; done += n) {
            n = Math.min(PAIRED_BLOCK, count - done);
            FloatBits.toInts(in, inOff + done, n, bits, 0);
            roundToBf16(bits, n);
            for (int i = 0; i < n; i++) halves[i] = (short) bits[i];
            shorts.put(done, halves, 0, n);
        }
    }

    /** Float bits to bf16 bits (in the low half), in place: rounding as {@link #floatToBf16}, NaN chosen by a mask so that the loop vectorises. */
    private static void roundToBf16(int[] bits, int n) {
        for (int i = 0; i < n; i++) {
            int b = bits[i];
            int rounded = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
            int nan = (0x7f800000 - (b & 0x7fffffff)) >> 31; // all ones when b is a NaN
            bits[i] = rounded ^ ((rounded ^ ((b >>> 16) | 0x40)) & nan);
        }
    }

    /**
     * Decodes {@code count} elements of {@code type} starting at the buffer's position into
     * {@code out[outOff..]}. The buffer must be little-endian; its position is not moved.
     */
    public static void decode(DType type, ByteBuffer src, float[] out, int outOff, int count) {
        decode(type, src, out, outOff, count, false);
    }

    /**
     * As {@link #decode}, and says whether the values are known to be finite: bf16 and f16 tell it
     * from their bits, one OR over the values in cache; other types return false, for the caller to
     * look at the floats. Only readers that count NaN/Inf inputs pay for the check.
     */
    public static boolean decodeFinite(DType type, ByteBuffer src, float[] out, int outOff, int count) {
        return decode(type, src, out, outOff, count, true);
    }

    private static boolean decode(DType type, ByteBuffer src, float[] out, int outOff, int count, boolean check) {
        ByteBuffer b = src.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int p = b.position();
        switch (type) {
            case F32:
                b.asFloatBuffer().get(out, outOff, count);
                return false;
            case BF16:
                return decodeBf16(b, out, outOff, count) && check;
            case F16: {
                short[] tmp = shorts(count);
                b.asShortBuffer().get(tmp, 0, count);
                for (int i = 0; i < count; i++) out[outOff + i] = f16ToFloat(tmp[i]);
                return check && allFinite(tmp, count, 0x7c00);
            }
            case F64:
                for (int i = 0; i < count; i++) out[outOff + i] = (float) b.getDouble(p + 8 * i);
                return false;
            case F8_E4M3:
                for (int i = 0; i < count; i++) out[outOff + i] = E4M3[b.get(p + i) & 0xff];
                return false;
            case F8_E5M2:
                for (int i = 0; i < count; i++) out[outOff + i] = E5M2[b.get(p + i) & 0xff];
                return false;
            case I64:
                for (int i = 0; i < count; i++) out[outOff + i] = (float) b.getLong(p + 8 * i);
                return false;
            case I32:
                for (int i = 0; i < count; i++) out[outOff + i] = (float) b.getInt(p + 4 * i);
                return false;
            case I16:
                for (int i = 0; i < count; i++) out[outOff + i] = (float) b.getShort(p + 2 * i);
                return false;
            case I8:
                for (int i = 0; i < count; i++) out[outOff + i] = (float) b.get(p + i);
                return false;
            case U8:
                for (int i = 0; i < count; i++) out[outOff + i] = (float) (b.get(p + i) & 0xff);
                return false;
            case BOOL:
                for (int i = 0; i < count; i++) out[outOff + i] = b.get(p + i) != 0 ? 1f : 0f;
                return false;
            default:
                throw new IllegalArgumentException("unsupported dtype " + type);
        }
    }

    /**
     * Whether no two-byte value holds an exponent of all ones ({@code exponent}: bf16's or f16's
     * mask): one more than the mask's lowest bit carries such a value into bit 15, and an OR over
     * the values already in cache says whether any did.
     */
    private static boolean allFinite(short[] v, int count, int exponent) {
        int low = exponent & -exponent, carries = 0;
        for (int i = 0; i < count; i++) carries |= (v[i] & exponent) + low;
        return (carries & 0x8000) == 0;
    }

    /** Encodes {@code count} floats into {@code dst} (little-endian) at its position, advancing it. */
    public static void encode(DType type, float[] in, int inOff, int count, ByteBuffer dst) {
        ByteBuffer b = dst.order(ByteOrder.LITTLE_ENDIAN);
        int p = b.position();
        switch (type) {
            case F32:
                b.asFloatBuffer().put(in, inOff, count);
                break;
            case BF16:
                encodeBf16(in, inOff, count, b);
                break;
            case F16: {
                short[] tmp = shorts(count);
                for (int i = 0; i < count; i++) tmp[i] = floatToF16(in[inOff + i]);
                b.asShortBuffer().put(tmp, 0, count);
                break;
            }
            case F64:
                for (int i = 0; i < count; i++) b.putDouble(p + 8 * i, in[inOff + i]);
                break;
            case F8_E4M3:
                for (int i = 0; i < count; i++) b.put(p + i, floatToF8e4m3(in[inOff + i]));
                break;
            case F8_E5M2:
                for (int i = 0; i < count; i++) b.put(p + i, floatToF8e5m2(in[inOff + i]));
                break;
            case I64:
                for (int i = 0; i < count; i++) b.putLong(p + 8 * i, (long) Math.rint(in[inOff + i]));
                break;
            case I32:
                for (int i = 0; i < count; i++) b.putInt(p + 4 * i, (int) Math.rint(in[inOff + i]));
                break;
            case I16:
                for (int i = 0; i < count; i++) b.putShort(p + 2 * i, (short) Math.rint(in[inOff + i]));
                break;
            case I8:
                for (int i = 0; i < count; i++) b.put(p + i, (byte) Math.rint(in[inOff + i]));
                break;
            case U8:
                for (int i = 0; i < count; i++) b.put(p + i, (byte) (int) Math.rint(in[inOff + i]));
                break;
            case BOOL:
                for (int i = 0; i < count; i++) b.put(p + i, (byte) (in[inOff + i] != 0 ? 1 : 0));
                break;
            default:
                throw new IllegalArgumentException("unsupported dtype " + type);
        }
        b.position(p + count * type.size());
    }
}
