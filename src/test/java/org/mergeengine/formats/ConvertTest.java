package org.mergeengine.formats;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
