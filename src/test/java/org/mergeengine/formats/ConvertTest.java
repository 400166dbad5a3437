package org.mergeengine.formats;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;
import org.mergeengine.tensor.Convert;

/** Float conversions round to nearest, ties to even, like torch's casts. */
class ConvertTest {
    @Test
    void bf16RoundsToNearestEven() {
        // 1 + 2^-8 is exactly halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even mantissa (1)
        assertEquals(1.0f, Convert.bf16ToFloat(Convert.floatToBf16(1 + 0x1p-8f)));
        assertEquals(1 + 0x1p-6f, Convert.bf16ToFloat(Convert.floatToBf16(1 + 0x1p-7f + 0x1p-8f)), "odd neighbour rounds up to even");
        assertEquals(1 + 0x1p-7f, Convert.bf16ToFloat(Convert.floatToBf16(1 + 0x1p-8f + 0x1p-12f)), "above halfway rounds up");
        assertTrue(Float.isNaN(Convert.bf16ToFloat(Convert.floatToBf16(Float.NaN))));
        assertEquals(Float.POSITIVE_INFINITY, Convert.bf16ToFloat(Convert.floatToBf16(Float.MAX_VALUE)));
    }

    @Test
    void bf16SplitDecodingGivesEveryPatternsValueByParityAtAnyOffset() {
        // All 65,536 bf16 patterns (NaNs, infinities, subnormals, -0), read from byte offsets that
        // are and are not multiples of 4.
        for (int offset : new int[] {0, 2, 6, 1}) {
            ByteBuffer src = ByteBuffer.allocateDirect(offset + 2 * 65536).order(ByteOrder.LITTLE_ENDIAN);
            for (int h = 0; h < 65536; h++) src.putShort(offset + 2 * h, (short) h);
            src.position(offset);
            float[] split = new float[65536];
            Convert.decodeBf16Split(src, split, 65536);
            assertEquals(offset, src.position(), "the position does not move");
            for (int h = 0; h < 65536; h++) {
                int at = (h & 1) == 0 ? h / 2 : 32768 + h / 2;
                assertEquals(h << 16, Float.floatToRawIntBits(split[at]), "pattern " + Integer.toHexString(h) + " at offset " + offset);
            }
        }
    }

    @Test
    void bf16DecodingInElementOrderGivesEveryPatternsValueForAnyCountAndOffset() {
        // Decoded a pair at a time in blocks: odd counts leave an unpaired last element, counts
        // past a block cross its boundary, and offsets put the pairs off any int alignment.
        for (boolean direct : new boolean[] {true, false}) {
            for (int offset : new int[] {0, 2, 1}) {
                ByteBuffer src = (direct ? ByteBuffer.allocateDirect(offset + 2 * 65536) : ByteBuffer.allocate(offset + 2 * 65536))
                        .order(ByteOrder.LITTLE_ENDIAN);
                for (int h = 0; h < 65536; h++) src.putShort(offset + 2 * h, (short) (h * 40503)); // every pattern, shuffled
                if (!direct) src.order(ByteOrder.BIG_ENDIAN); // the bytes are little-endian whatever the buffer's order
                for (int count : new int[] {65536, 65535, 8193, 8192, 3, 1, 0}) {
                    src.position(offset);
                    float[] out = new float[count + 4];
                    java.util.Arrays.fill(out, 42f);
                    Convert.decode(DType.BF16, src, out, 3, count);
                    assertEquals(offset, src.position(), "the position does not move");
                    for (int i = 0; i < count; i++) {
                        int h = (i * 40503) & 0xffff;
                        assertEquals(h << 16, Float.floatToRawIntBits(out[3 + i]), "element " + i + " of " + count + ", offset " + offset);
                    }
                    assertEquals(42f, out[2], "nothing written before the elements");
                    assertEquals(42f, out[3 + count], "nothing written past them");
                }
            }
        }
    }

    @Test
    void bf16DecodingInElementOrderFindsANonFiniteValueInEitherHalfOfAPairAndUnpaired() {
        int n = 8193; // a block of 8,192 and one unpaired element
        ByteBuffer src = ByteBuffer.allocateDirect(2 * n).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) src.putShort(2 * i, Convert.floatToBf16((i % 5 - 2) * 0.81f));
        src.putShort(20, (short) 0x7f7f);
        float[] out = new float[n];
        assertTrue(Convert.decodeFinite(DType.BF16, src.duplicate().order(ByteOrder.LITTLE_ENDIAN).position(0), out, 0, n));
        for (short bad : new short[] {(short) 0x7f80, (short) 0xff80, (short) 0x7fc1}) {
            for (int at : new int[] {0, 1, 8190, 8191, 8192}) {
                ByteBuffer b = ByteBuffer.allocateDirect(2 * n).order(ByteOrder.LITTLE_ENDIAN);
                b.put(src.duplicate().position(0)).flip();
                b.putShort(2 * at, bad);
                org.junit.jupiter.api.Assertions.assertFalse(Convert.decodeFinite(DType.BF16, b, out, 0, n),
                        Integer.toHexString(bad & 0xffff) + " at element " + at);
            }
        }
    }

    @Test
    void bf16SplitDecodingSaysWhetherEveryValueIsFinite() {
        // The engine counts NaN and infinite inputs only where this says there are some: a miss
        // in either half of a pair, or in the last pair, would hide them from the warning.
        int n = 4096;
        ByteBuffer src = ByteBuffer.allocateDirect(2 * n).order(ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[n];
        for (int i = 0; i < n; i++) src.putShort(2 * i, Convert.floatToBf16((i % 7 - 3) * 0.37f));
        src.putShort(10, (short) 0x7f7f); // the largest finite exponent
        assertTrue(Convert.decodeBf16Split(src.duplicate().order(ByteOrder.LITTLE_ENDIAN).position(0), out, n));
        short[] nonFinite = {(short) 0x7f80, (short) 0xff80, (short) 0x7fc0, (short) 0xffff, (short) 0x7f81};
        for (short bad : nonFinite) {
            for (int at : new int[] {0, 1, 2 * 1000 + 1, n - 2, n - 1}) {
                ByteBuffer b = ByteBuffer.allocateDirect(2 * n).order(ByteOrder.LITTLE_ENDIAN);
                b.put(src.duplicate().position(0)).flip();
                b.putShort(2 * at, bad);
                org.junit.jupiter.api.Assertions.assertFalse(Convert.decodeBf16Split(b, out, n),
                        Integer.toHexString(bad & 0xffff) + " at element " + at);
            }
        }
    }

    @Test
    void decodingSaysWhetherBf16AndF16ValuesAreAllFinite() {
        int n = 1000;
        for (DType dt : new DType[] {DType.BF16, DType.F16}) {
            short inf = (short) (dt == DType.BF16 ? 0x7f80 : 0x7c00), nan = (short) (dt == DType.BF16 ? 0xffc1 : 0xfe01);
            short largest = (short) (dt == DType.BF16 ? 0x7f7f : 0x7bff), negative = (short) (dt == DType.BF16 ? 0xbf80 : 0xbc00);
            ByteBuffer b = ByteBuffer.allocate(2 * n).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < n; i++) b.putShort(2 * i, i % 3 == 0 ? largest : negative);
            float[] out = new float[n];
            assertTrue(Convert.decodeFinite(dt, b, out, 0, n), dt + ": finite values");
            for (short bad : new short[] {inf, nan, (short) (inf | 0x8000)}) {
                for (int at : new int[] {0, 517, n - 1}) {
                    ByteBuffer c = ByteBuffer.allocate(2 * n).order(ByteOrder.LITTLE_ENDIAN).put(b.duplicate().clear());
                    c.putShort(2 * at, bad);
                    org.junit.jupiter.api.Assertions.assertFalse(Convert.decodeFinite(dt, c.clear(), out, 0, n), dt + " " + Integer.toHexString(bad & 0xffff) + " at " + at);
                    assertTrue(!Float.isFinite(out[at]), "and it decodes as non-finite");
                }
            }
        }
        assertTrue(!Convert.decodeFinite(DType.F32, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN), new float[4], 0, 4),
                "other types leave the question to the caller");
    }

    @Test
    void bf16SplitEncodingRoundsEveryFloatAsTheScalarEncoding() {
        // Rounding ties (odd and even neighbours), values that round up into infinity, NaNs with
        // payloads in either half, subnormals, and random bit patterns.
        java.util.SplittableRandom r = new java.util.SplittableRandom(7);
        int n = 1 << 16;
        float[] values = new float[n];
        int[] special = {0x3f808000, 0x3f818000, 0x3f808001, 0x7f7fffff, 0xff7f8000, 0x7f800000, 0xff800000, 0x7fc00000,
            0x7f800001, 0xff800001, 0x7fbfffff, 0x7f810000, 0x00000001, 0x80008000, 0x00018000, 0x80000000, 0, 0x7fff8000};
        for (int i = 0; i < n; i++) values[i] = Float.intBitsToFloat(i < special.length ? special[i] : r.nextInt());
        for (int offset : new int[] {0, 2, 3}) {
            ByteBuffer dst = ByteBuffer.allocateDirect(offset + 2 * n).order(ByteOrder.LITTLE_ENDIAN);
            dst.position(offset);
            float[] split = new float[n];
            for (int i = 0; i < n; i++) split[(i & 1) == 0 ? i / 2 : n / 2 + i / 2] = values[i];
            Convert.encodeBf16Split(split, n, dst);
            assertEquals(offset + 2 * n, dst.position(), "the position advances past the elements");
            for (int i = 0; i < n; i++) {
                assertEquals(Convert.floatToBf16(values[i]), dst.getShort(offset + 2 * i),
                        "float bits " + Integer.toHexString(Float.floatToRawIntBits(values[i])) + " at offset " + offset);
            }
        }
    }

    @Test
    void bf16EncodingInElementOrderRoundsEveryFloatAsTheScalarEncoding() {
        // Odd counts, long and short runs, a source offset and unaligned targets.
        java.util.SplittableRandom r = new java.util.SplittableRandom(11);
        int n = 20001;
        float[] values = new float[n + 5];
        int[] special = {0x3f808000, 0x3f818000, 0x7f7fffff, 0xff7f8000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001,
            0xff800001, 0x7fbfffff, 0x00000001, 0x80008000, 0x80000000, 0, 0x7fff8000};
        for (int i = 0; i < values.length; i++) values[i] = Float.intBitsToFloat(i < special.length ? special[i] : r.nextInt());
        int from = 3;
        values[from + n - 1] = Float.intBitsToFloat(0x7fa00001); // a signalling NaN as the last, unpaired element
        for (int count : new int[] {n, 8192, 8193, 1, 2, 0}) {
            for (int offset : new int[] {0, 1, 2, -1}) { // -1: a heap buffer in big-endian order, at 1
                ByteBuffer dst = offset >= 0 ? ByteBuffer.allocateDirect(offset + 2 * (count + 4)).order(ByteOrder.LITTLE_ENDIAN)
                        : ByteBuffer.allocate(1 + 2 * (count + 4)).order(ByteOrder.BIG_ENDIAN);
                if (offset < 0) offset = 1;
                dst.position(offset);
                Convert.encode(org.mergeengine.formats.DType.BF16, values, from, count, dst);
                assertEquals(offset + 2 * count, dst.position(), "the position advances past the elements");
                for (int i = 0; i < count; i++) {
                    assertEquals(Convert.floatToBf16(values[from + i]), dst.getShort(offset + 2 * i),
                            "element " + i + " of " + count + " at offset " + offset);
                }
                assertEquals(0, dst.getShort(offset + 2 * count), "nothing written past the elements");
            }
        }
    }

    @Test
    void bf16SplitConversionsRefuseAnOddCount() {
        ByteBuffer b = ByteBuffer.allocateDirect(64).order(ByteOrder.LITTLE_ENDIAN);
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> Convert.decodeBf16Split(b, new float[8], 7));
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> Convert.encodeBf16Split(new float[8], 7, b));
    }

    @Test
    void f16ExhaustiveRoundTripAndRounding() {
        for (int h = 0; h < 65536; h++) {
            float f = Convert.f16ToFloat((short) h);
            if (Float.isNaN(f)) continue;
            assertEquals((short) h, Convert.floatToF16(f), "half " + Integer.toHexString(h));
        }
        assertEquals(1.0f, Convert.f16ToFloat(Convert.floatToF16(1 + 0x1p-11f)), "halfway ties to even");
        assertEquals(1 + 0x1p-9f, Convert.f16ToFloat(Convert.floatToF16(1 + 0x1p-10f + 0x1p-11f)));
        assertEquals(0x1p-24f, Convert.f16ToFloat(Convert.floatToF16(0x1p-24f)), "smallest subnormal");
        assertEquals(0f, Convert.f16ToFloat(Convert.floatToF16(0x1p-26f)));
        assertEquals(65504f, Convert.f16ToFloat(Convert.floatToF16(65519f)));
        assertEquals(Float.POSITIVE_INFINITY, Convert.f16ToFloat(Convert.floatToF16(65520f)));
    }

    @Test
    void fp8RoundTrips() {
        for (int b = 0; b < 256; b++) {
            float e4 = Convert.f8e4m3ToFloat((byte) b);
            if (!Float.isNaN(e4) && !(e4 == 0 && b == 0x80)) assertEquals((byte) b, Convert.floatToF8e4m3(e4), "e4m3 " + b);
            float e5 = Convert.f8e5m2ToFloat((byte) b);
            if (!Float.isNaN(e5) && !Float.isInfinite(e5) && !(e5 == 0 && b == 0x80)) assertEquals((byte) b, Convert.floatToF8e5m2(e5), "e5m2 " + b);
        }
        assertEquals(448f, Convert.f8e4m3ToFloat((byte) 0x7e));
        assertEquals(57344f, Convert.f8e5m2ToFloat((byte) 0x7b));
    }
}
