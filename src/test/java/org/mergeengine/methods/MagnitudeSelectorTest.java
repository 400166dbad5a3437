package org.mergeengine.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** Top-k membership by magnitude, equal magnitudes decided by index, against sorting every element. */
class MagnitudeSelectorTest {
    /** Members by brute force: order by magnitude (largest or smallest first), then index (low or high first); take k. */
    static boolean[] reference(float[] v, long k, boolean largest, boolean lowIndexFirst) {
        Comparator<Integer> byMagnitude = Comparator.comparingInt(i -> MagnitudeSelector.key(v[i]));
        if (largest) byMagnitude = byMagnitude.reversed();
        Comparator<Integer> byIndex = lowIndexFirst ? Comparator.naturalOrder() : Comparator.reverseOrder();
        Integer[] order = IntStream.range(0, v.length).boxed().sorted(byMagnitude.thenComparing(byIndex)).toArray(Integer[]::new);
        boolean[] m = new boolean[v.length];
        for (int i = 0; i < Math.min(k, v.length); i++) m[order[i]] = true;
        return m;
    }

    static boolean[] select(float[] v, long k, boolean largest, boolean lowIndexFirst, SplittableRandom r) {
        MagnitudeSelector s = new MagnitudeSelector(k, v.length, largest, lowIndexFirst);
        for (int pass = 0; pass < 2; pass++) {
            for (int[] c : chunks(v.length, r)) {
                float[] part = Arrays.copyOfRange(v, c[0], c[1]);
                if (pass == 0) s.countHigh(part, part.length); else s.countLow(part, part.length);
            }
            if (pass == 0) s.endHigh(); else s.endLow();
        }
        s.restart();
        boolean[] m = new boolean[v.length];
        for (int[] c : chunks(v.length, r)) {
            float[] part = Arrays.copyOfRange(v, c[0], c[1]);
            int[] out = new int[part.length];
            s.fill(part, part.length, out);
            for (int i = 0; i < out.length; i++) m[c[0] + i] = out[i] == -1;
        }
        return m;
    }

    /** Random chunk boundaries, so that the cut's ties fall inside, across and between chunks. */
    static List<int[]> chunks(int n, SplittableRandom r) {
        List<int[]> l = new ArrayList<>();
        for (int s = 0; s < n; ) {
            int len = 1 + r.nextInt(Math.max(1, n / 5));
            l.add(new int[] {s, Math.min(n, s + len)});
            s += len;
        }
        return l;
    }

    @Test
    void manyEqualMagnitudesAreDecidedByIndexWhateverTheChunking() {
        SplittableRandom r = new SplittableRandom(7);
        for (int round = 0; round < 300; round++) {
            int n = 1 + r.nextInt(3000);
            int distinct = 1 + r.nextInt(12); // few distinct magnitudes: the cut is almost always a tie
            float[] v = new float[n];
            for (int i = 0; i < n; i++) v[i] = (r.nextBoolean() ? -1 : 1) * (1 + r.nextInt(distinct)) * 0.125f;
            long k = r.nextInt(n + 2);
            for (boolean largest : new boolean[] {true, false}) {
                for (boolean low : new boolean[] {true, false}) {
                    assertArrayEquals(reference(v, k, largest, low), select(v, k, largest, low, r),
                            "n=" + n + " k=" + k + " largest=" + largest + " lowIndexFirst=" + low);
                }
            }
        }
    }
}
