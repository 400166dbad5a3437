package org.mergeengine.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Each method against the reference values of the compatibility spec (§13.3, computed by
 * mergekit's own functions in float64). A = [[1,2],[3,-1]], B = [[0.5,-1],[2,2]], base C = [[0,1],[1,0]].
 */
class MethodMathTest {
    static final float[] A = {1, 2, 3, -1}, B = {0.5f, -1, 2, 2}, C = {0, 1, 1, 0};
    static final float TOL = 2e-5f;

    static void close(double[] expected, float[] got) {
        assertEquals(expected.length, got.length);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], got[i], TOL * Math.max(1, Math.abs(expected[i])), "element " + i);
        }
    }

    @Test
    void slerpReferenceValues() {
        close(new double[] {0.707107, 1.414214}, new KernelRunner("slerp").base(1, 0).input(0, 2).global("t", 0.5).run());
        close(new double[] {0.409017, 1.645507, 2.881998}, new KernelRunner("slerp").base(1, 2, 3).input(-1, 0.5f, 2).global("t", 0.3).run());
        // colinear inputs fall back to linear interpolation
        close(new double[] {1.5, 3.0}, new KernelRunner("slerp").base(1, 2).input(2, 4).global("t", 0.5).run());
    }

    @Test
    void slerpEndpointsAndChunking() {
        float[] a = new float[1000], b = new float[1000];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) Math.sin(i);
            b[i] = (float) Math.cos(3 * i);
        }
        assertArrayEquals(a, new KernelRunner("slerp").base(a).input(b).global("t", 0).run(), 1e-6f);
        assertArrayEquals(b, new KernelRunner("slerp").base(a).input(b).global("t", 1).run(), 1e-5f);
        float[] whole = new KernelRunner("slerp").base(a).input(b).global("t", 0.3).run();
        float[] chunked = new KernelRunner("slerp").base(a).input(b).global("t", 0.3).run(7);
        assertArrayEquals(whole, chunked, 1e-6f);
    }

    @Test
    void slerpOfZeroBaseDoesNotProduceNaN() {
        float[] out = new KernelRunner("slerp").base(0, 0, 0).input(1, 2, 3).global("t", 0.5).run();
        for (float v : out) assertEquals(false, Float.isNaN(v));
    }

    @Test
    void nuslerpReferenceValues() {
        close(new double[] {1.008377, 0.959648, 3.289409, 0.313007},
                new KernelRunner("nuslerp").shape(2, 2).input(A).input(B).model("weight", 0.6, 0.4).run());
        close(new double[] {1.697492, 1.459058, 3.026013, 0.268943},
                new KernelRunner("nuslerp").shape(2, 2).input(A).input(B).model("weight", 0.6, 0.4).global("nuslerp_flatten", 0).run());
        close(new double[] {0.800543, 1.922947, 2.601793, 1.141172},
                new KernelRunner("nuslerp").shape(2, 2).input(A).input(B).model("weight", 0.6, 0.4)
                        .global("nuslerp_flatten", 0).global("nuslerp_row_wise", 1).run());
        close(new double[] {1.214558, 0.568825, 3.429116, 0.431175},
                new KernelRunner("nuslerp").shape(2, 2).input(A).input(B).base(C).model("weight", 0.6, 0.4, Double.NaN).run());
    }

    @Test
    void nuslerpWeightsSummingToZeroUseHalfway() {
        float[] half = new KernelRunner("nuslerp").shape(2, 2).input(A).input(B).base(C).model("weight", 0.5, 0.5, Double.NaN).run();
        float[] cancel = new KernelRunner("nuslerp").shape(2, 2).input(A).input(B).base(C).model("weight", -0.5, 0.5, Double.NaN).run();
        assertArrayEquals(half, cancel, 1e-6f);
    }

    @Test
    void multislerpReferenceValues() {
        close(new double[] {0.990729, 0.800558, 3.267412, 0.485396},
                new KernelRunner("multislerp").shape(2, 2).input(A).input(B).model("weight", 0.6, 0.4).run());
        close(new double[] {1.250153, 0.845045, 3.500306, 0.154955},
                new KernelRunner("multislerp").shape(2, 2).input(A).input(B).base(C).model("weight", 0.6, 0.4, Double.NaN).run());
    }

    @Test
    void karcherReferenceValues() {
        close(new double[] {0.938298, 0.416529, 3.179909, 0.886785}, new KernelRunner("karcher").shape(2, 2).input(A).input(B).run());
    }

    @Test
    void nearswapRamLinearTaskArithmetic() {
        close(new double[] {0.5, 1.5, 1.5, -0.5}, new KernelRunner("nearswap").base(C).input(A).global("t", 0.5).run());
        close(new double[] {0.75, 0.5, 2.5, 0.5}, new KernelRunner("ram").base(C).input(A).input(B).run());
        close(new double[] {0.75, 0.5, 2.5, 0.5}, new KernelRunner("ramplus_tl").base(C).input(A).input(B).run());
        close(new double[] {0.8, 0.8, 2.6, 0.2}, new KernelRunner("linear").input(A).input(B).model("weight", 0.6, 0.4).run());
        close(new double[] {0.833333, 1.0, 2.666667, 0.0}, new KernelRunner("linear").input(A).input(B).model("weight", 2, 1).run());
        close(new double[] {0.8, 0.8, 2.6, 0.2},
                new KernelRunner("task_arithmetic").input(A).input(B).base(C).model("weight", 0.6, 0.4, Double.NaN).run());
        close(new double[] {0.4, 0.9, 1.8, 0.1}, new KernelRunner("task_arithmetic").input(A).input(B).base(C)
                .model("weight", 0.6, 0.4, Double.NaN).global("lambda", 0.5).run());
    }

    @Test
    void modelStockReferenceValues() {
        close(new double[] {-0.343683, 1.229122, 0.312635, -0.229122},
                new KernelRunner("model_stock").shape(2, 2).base(C).input(A).input(B).run());
        // filter-wise: row 2's offsets are orthogonal, so t = 0 and the row is the base's
        close(new double[] {-1.589571, 2.059714, 1.0, 0.0},
                new KernelRunner("model_stock").shape(2, 2).base(C).input(A).input(B).global("filter_wise", 1).run());
    }

    @Test
    void sceAndArceeFusionReferenceValues() {
        close(new double[] {0.715385, -1, 2.430769, 2}, new KernelRunner("sce").shape(2, 2).base(C).input(A).input(B).run());
        close(new double[] {0, 1, 3, 0}, new KernelRunner("arcee_fusion").shape(2, 2).base(C).input(A).run());
    }

    @Test
    void tiesReferenceValues() {
        float[] x1 = {1, -2, 0.5f, 0}, x2 = {-3, 1, 0.25f, 0}, zero = {0, 0, 0, 0};
        close(new double[] {-3, -2, 0.375, 0}, new KernelRunner("ties").base(zero).input(x1).input(x2).model("weight", Double.NaN, 1, 1).run());
        close(new double[] {-3, -2, 0.75, 0}, new KernelRunner("ties").base(zero).input(x1).input(x2)
                .model("weight", Double.NaN, 1, 1).global("normalize", 0).run());
        close(new double[] {-3, -2, 0, 0}, new KernelRunner("ties").base(zero).input(x1).input(x2)
                .model("weight", Double.NaN, 1, 1).model("density", Double.NaN, 0.5, 0.5).run());
    }

    @Test
    void tiesSignElectionMatchesABranchingReferenceBitForBit() {
        // Values chosen to hit the edges of the branch-free election: deltas of exactly zero, of -0,
        // subnormal deltas, sums that cancel to zero, and a negative weight whose divisor cancels.
        int n = 100_003;
        Random r = new Random(5);
        float[] base = new float[n], x1 = new float[n], x2 = new float[n], x3 = new float[n];
        float[][] xs = {x1, x2, x3};
        for (int j = 0; j < n; j++) {
            base[j] = j % 5 == 1 ? 0f : (float) r.nextGaussian(); // around 0, tiny changes stay subnormal deltas
            for (float[] x : xs) {
                switch (r.nextInt(6)) {
                    case 0: x[j] = base[j]; break;                                           // no change
                    case 1: x[j] = base[j] == 0 ? -0f : base[j]; break;
                    case 2: x[j] = base[j] + (r.nextBoolean() ? 1 : -1) * Float.MIN_VALUE * (1 + r.nextInt(4)); break;
                    default: x[j] = base[j] + (float) r.nextGaussian() * 0.01f;
                }
            }
            if (j % 97 == 0) { base[j] = 0; x1[j] = 0.5f; x2[j] = -0.25f; x3[j] = 0.5f; } // weighted sum 0: elects +
        }
        double[] w = {1, -0.5, 0.5};
        for (boolean normalize : new boolean[] {true, false}) {
            float[] got = new KernelRunner("ties").base(base).input(x1).input(x2).input(x3).model("weight", Double.NaN, w[0], w[1], w[2])
                    .global("normalize", normalize ? 1 : 0).run(40_000);
            for (int j = 0; j < n; j++) {
                float[] d = new float[3];
                float all = 0f;
                for (int k = 0; k < 3; k++) {
                    d[k] = (xs[k][j] - base[j]) * (float) w[k];
                    all += d[k];
                }
                boolean negative = all < 0;
                float sum = 0f, div = 0f;
                for (int k = 0; k < 3; k++) {
                    boolean agrees = d[k] != 0 && (d[k] < 0) == negative;
                    if (agrees) {
                        sum += d[k];
                        div += (float) w[k];
                    }
                }
                float want = normalize ? base[j] + 1f * (sum / (div == 0 ? 1f : div)) : base[j] + 1f * sum;
                if (Float.floatToRawIntBits(want) != Float.floatToRawIntBits(got[j])) {
                    throw new AssertionError("element " + j + " (normalize " + normalize + "): want " + want + ", got " + got[j]);
                }
            }
        }
    }

    @Test
    void magnitudeTrimKeepsTopKAndRestoresL1() {
        float[] x = new float[100], zero = new float[100];
        for (int i = 0; i < 100; i++) x[i] = i + 1;
        float[] out = new KernelRunner("ties").base(zero).input(x).model("weight", Double.NaN, 1).model("density", Double.NaN, 0.3)
                .global("rescale", 1).run(9);
        for (int i = 0; i < 100; i++) {
            if (i < 70) assertEquals(0f, out[i], "element " + (i + 1) + " must be trimmed");
            else assertEquals(x[i] * 1.968811, out[i], 1e-4 * x[i], "kept element rescaled by the L1 ratio");
        }
    }

    @Test
    void magnitudeTiesAreBrokenByLowestIndexFirst() {
        float[] x = {1, 1, 1, 1, 5, 1}, zero = new float[6];
        float[] out = new KernelRunner("ties").base(zero).input(x).model("weight", Double.NaN, 1).model("density", Double.NaN, 0.5).run(2);
        assertArrayEquals(new float[] {1, 1, 0, 0, 5, 0}, out);
    }

    @Test
    void breadcrumbsDropsLargestAndSmallest() {
        float[] x = new float[100], zero = new float[100];
        for (int i = 0; i < 100; i++) x[i] = (i % 2 == 0 ? 1 : -1) * (i + 1);
        float[] out = new KernelRunner("breadcrumbs").base(zero).input(x).model("weight", Double.NaN, 1)
                .model("density", Double.NaN, 0.9).model("gamma", Double.NaN, 0.01).run(13);
        int nonzero = 0;
        for (float v : out) if (v != 0) nonzero++;
        assertEquals(90, nonzero);
        assertEquals(0f, out[99], "the single largest is dropped");
        for (int i = 0; i < 9; i++) assertEquals(0f, out[i], "the smallest are dropped");
    }

    @Test
    void breadcrumbsOnTensorSmallerThanOneOverGammaKeepsTheLargest() {
        // mergekit zeroes such tensors entirely (top = 0 slices to nothing); here only the smallest go.
        float[] x = new float[50], zero = new float[50];
        for (int i = 0; i < 50; i++) x[i] = i + 1;
        float[] out = new KernelRunner("breadcrumbs").base(zero).input(x).model("weight", Double.NaN, 1)
                .model("density", Double.NaN, 0.9).model("gamma", Double.NaN, 0.01).run();
        int nonzero = 0;
        for (float v : out) if (v != 0) nonzero++;
        assertEquals(45, nonzero);
        assertEquals(50f, out[49]);
    }

    @Test
    void densityOneIsPlainTaskArithmeticWithSignElection() {
        float[] base = {0, 0, 0}, a = {1, 2, -1}, b = {3, -2, -3};
        float[] out = new KernelRunner("dare_ties").base(base).input(a).input(b).model("weight", Double.NaN, 1, 1)
                .model("density", Double.NaN, 1, 1).run();
        // sums 4, 0 (counts as +), -4: agreeing entries only
        assertArrayEquals(new float[] {4, 2, -4}, out, 1e-6f);
    }

    @Test
    void zeroTaskVectorsReturnTheBase() {
        float[] base = {1, 2, 3};
        for (String m : new String[] {"ties", "dare_ties", "della", "breadcrumbs_ties", "task_arithmetic"}) {
            float[] out = new KernelRunner(m).base(base).input(base.clone()).input(base.clone()).model("weight", Double.NaN, 1, 1)
                    .model("density", Double.NaN, 0.5, 0.5).model("epsilon", Double.NaN, 0.1, 0.1).model("gamma", Double.NaN, 0.1, 0.1).run();
            assertArrayEquals(base, out, m);
        }
    }
}
