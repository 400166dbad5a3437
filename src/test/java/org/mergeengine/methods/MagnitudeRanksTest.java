package org.mergeengine.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** DELLA's row ordering against sorting (magnitude, index) pairs. */
class MagnitudeRanksTest {
    static int[] reference(float[] v, int off, int n) {
        long[] pairs = new long[n];
        for (int j = 0; j < n; j++) pairs[j] = ((long) MagnitudeSelector.key(v[off + j]) << 32) | j;
        Arrays.sort(pairs);
        int[] order = new int[n];
        for (int j = 0; j < n; j++) order[j] = (int) pairs[j];
        return order;
    }

    @Test
    void ordersByMagnitudeThenIndex() {
        SplittableRandom r = new SplittableRandom(7);
        MagnitudeRanks ranks = new MagnitudeRanks(); // reused across rows of different lengths, as in a merge
        for (int trial = 0; trial < 300; trial++) {
            int n = trial < 5 ? trial : 1 + r.nextInt(3000);
            int off = r.nextInt(5);
            float[] v = new float[off + n];
            int style = trial % 5;
            for (int j = 0; j < v.length; j++) {
                switch (style) {
                    // weights' deltas: bf16 values subtracted, many equal magnitudes of both signs
                    case 0 -> v[j] = bf16((float) r.nextGaussian() * 0.02f) - bf16((float) r.nextGaussian() * 0.02f);
                    // few distinct values: long runs of ties, signed zeros
                    case 1 -> v[j] = (r.nextInt(7) - 3) * 0.5f + (r.nextBoolean() ? 0f : -0f);
                    // magnitudes from subnormals to infinity and NaN, so every radix digit varies
                    case 2 -> v[j] = Float.intBitsToFloat(r.nextInt());
                    // one shared high digit: the pass over it has a single bucket and is skipped
                    case 3 -> v[j] = 1f + r.nextInt(1 << 12) * 0x1p-23f;
                    default -> v[j] = r.nextBoolean() ? 0f : -0f;
                }
            }
            int[] got = new int[n + 3];
            ranks.ascending(v, off, n, got);
            assertArrayEquals(reference(v, off, n), Arrays.copyOf(got, n), "trial " + trial + ", style " + style + ", " + n + " elements");
        }
    }

    private static float bf16(float x) {
        return Float.intBitsToFloat(Float.floatToRawIntBits(x) & 0xffff0000);
    }
}
