package org.mergeengine.methods;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Test;
import org.mergeengine.tensor.CounterRandom;

/** The integer keep-mask decides exactly as comparing the double draw with p does. */
class RandomThresholdTest {
    @Test
    void keepMaskAgreesWithTheDoubleComparisonForEveryDensity() {
        Random r = new Random(11);
        double[] edges = {0, -0.25, 1, 1.5, 0.5, 0x1.0p-53, 0x1.0p-54, 0x1.8p-53, 1 - 0x1.0p-53, Math.nextDown(1.0), Double.MIN_VALUE, Double.NaN, 0.1, 0.9};
        double[] ps = new double[edges.length + 50];
        System.arraycopy(edges, 0, ps, 0, edges.length);
        for (int i = edges.length; i < ps.length; i++) ps[i] = r.nextDouble();
        long key = CounterRandom.streamKey(42, "model.layers.3.mlp.down_proj.weight", 1);
        int kept = 0;
        for (double p : ps) {
            long thr = CounterRandom.below(p);
            for (long i = 0; i < 20_000; i++) {
                int want = CounterRandom.uniform(key, i) < p ? -1 : 0;
                assertEquals(want, CounterRandom.keepMask(key, i, thr), "p = " + p + ", index " + i);
                kept -= want;
            }
        }
        // Draws sitting exactly on a threshold are where an off-by-one would show: build such draws.
        for (long i = 0; i < 2000; i++) {
            double u = CounterRandom.uniform(key, i);
            for (double p : new double[] {u, Math.nextUp(u), Math.nextDown(u)}) {
                assertEquals(u < p ? -1 : 0, CounterRandom.keepMask(key, i, CounterRandom.below(p)), "p = " + p + " at its own draw");
            }
        }
        Assertions.assertTrue(kept > 0);
    }

    @Test
    void batchDrawsEqualSingleDraws() {
        Random r = new Random(5);
        long key = CounterRandom.streamKey(7, "model.embed_tokens.weight", 2);
        int[] out = new int[5000];
        long[] scratch = new long[5000];
        for (double p : new double[] {0, 1, 0.5, 0x1.0p-53, Math.nextDown(1.0), 0.3, 0.77}) {
            long thr = CounterRandom.below(p);
            for (long start : new long[] {0, 1, 63, 1L << 40, Long.MAX_VALUE / 3, r.nextLong() & Long.MAX_VALUE}) {
                int len = 1 + r.nextInt(out.length);
                Arrays.fill(out, 7);
                CounterRandom.keepMasks(key, start, thr, out, len, scratch);
                for (int j = 0; j < len; j++) assertEquals(CounterRandom.keepMask(key, start + j, thr), out[j], "p = " + p + ", index " + (start + j));
                if (len < out.length) assertEquals(7, out[len], "nothing written past len");
            }
        }
    }
}
