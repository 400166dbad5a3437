package org.mergeengine.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.mergeengine.tensor.CounterRandom;

/** DARE and DELLA: keep fractions, L1 mass, sign election, and independence from chunking. */
class RandomMethodsTest {
    static float[] noise(int n, long seed) {
        float[] x = new float[n];
        long k = CounterRandom.streamKey(seed, "noise", 0);
        for (int i = 0; i < n; i++) x[i] = (float) (CounterRandom.uniform(k, i) * 2 - 1);
        return x;
    }

    @Test
    void dareKeepsEachElementWithProbabilityDensityAndRestoresL1() {
        int n = 40_000;
        float[] base = new float[n], d = noise(n, 1);
        for (double rho : new double[] {0.1, 0.4, 0.9}) {
            float[] out = new KernelRunner("dare_linear").base(base).input(d).model("weight", Double.NaN, 1).model("density", Double.NaN, rho).run(3001);
            long kept = 0;
            double l1In = 0, l1Out = 0;
            for (int i = 0; i < n; i++) {
                if (out[i] != 0) kept++;
                l1In += Math.abs(d[i]);
                l1Out += Math.abs(out[i]);
            }
            double sd = Math.sqrt(n * rho * (1 - rho));
            assertTrue(Math.abs(kept - n * rho) <= 5 * sd, "kept " + kept + " of " + n + " at density " + rho);
            assertEquals(l1In, l1Out, 1e-4 * l1In, "rescaling restores the L1 mass exactly");
        }
    }

    @Test
    void dareTiesObeysTheSignElection() {
        int n = 5000;
        float[] base = new float[n], a = noise(n, 2), b = noise(n, 3);
        float[] out = new KernelRunner("dare_ties").base(base).input(a).input(b).model("weight", Double.NaN, 1, 1)
                .model("density", Double.NaN, 0.5, 0.5).global("normalize", 1).run();
        for (int i = 0; i < n; i++) {
            // with normalisation each value is a mean of agreeing, rescaled deltas: its sign is that of a kept delta
            if (out[i] == 0) continue;
            boolean matchesA = Math.signum(out[i]) == Math.signum(a[i]), matchesB = Math.signum(out[i]) == Math.signum(b[i]);
            assertTrue(matchesA || matchesB, "element " + i);
        }
    }

    @Test
    void sameSeedSameBytesWhateverTheChunking() {
        int n = 10_000;
        float[] base = noise(n, 4), a = noise(n, 5), b = noise(n, 6);
        for (String m : new String[] {"dare_ties", "della", "della_linear", "dare_linear"}) {
            KernelRunner r = new KernelRunner(m).shape(100, 100).base(base).input(a).input(b).model("weight", Double.NaN, 1, 0.5)
                    .model("density", Double.NaN, 0.6, 0.4).model("epsilon", Double.NaN, 0.2, 0.1);
            float[] whole = r.run(), chunked = r.run(300);
            assertArrayEquals(whole, chunked, m);
            float[] other = new KernelRunner(m).shape(100, 100).base(base).input(a).input(b).model("weight", Double.NaN, 1, 0.5)
                    .model("density", Double.NaN, 0.6, 0.4).model("epsilon", Double.NaN, 0.2, 0.1).seed(7).run();
            assertFalse(Arrays.equals(whole, other), m + ": another seed draws other masks");
        }
    }

    @Test
    void dellaKeepsLargeMagnitudesMoreOften() {
        int rows = 200, cols = 100;
        float[] base = new float[rows * cols], d = new float[rows * cols];
        for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) d[r * cols + c] = (c + 1) * (r % 2 == 0 ? 1 : -1);
        float[] out = new KernelRunner("della_linear").shape(rows, cols).base(base).input(d).model("weight", Double.NaN, 1)
                .model("density", Double.NaN, 0.5).model("epsilon", Double.NaN, 0.4).run();
        int lowKept = 0, highKept = 0;
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                if (out[r * cols + c] == 0) continue;
                if (c < 10) lowKept++;
                if (c >= 90) highKept++;
            }
        }
        // keep probability is about 0.14 for the 10 smallest of a row and 0.86 for the 10 largest
        assertTrue(lowKept < 0.25 * rows * 10, "low " + lowKept);
        assertTrue(highKept > 0.75 * rows * 10, "high " + highKept);
    }
}
