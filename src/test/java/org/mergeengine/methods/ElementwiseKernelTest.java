package org.mergeengine.methods;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * A kernel that declares itself elementwise gets a tile's elements in another order (bf16 tiles
 * split by parity). Each such kernel must then give every element the value it gives in order; a
 * kernel whose values depend on an element's index or neighbours must not declare it.
 */
class ElementwiseKernelTest {
    static final int N = 4096;

    static float[] values(long seed, double scale) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[N];
        for (int i = 0; i < N; i++) v[i] = (float) ((r.nextDouble() - 0.5) * scale);
        v[3] = 0f;
        v[5] = -0f;
        return v;
    }

    record Case(String label, Supplier<KernelRunner> runner, boolean elementwise) {}

    static final float[] A = values(1, 2), B = values(2, 2), C = values(3, 2);

    static final List<Case> CASES = List.of(
            new Case("linear", () -> new KernelRunner("linear").input(A).input(B).input(C).model("weight", 0.5, 0.3, 0.2), true),
            new Case("task_arithmetic", () -> new KernelRunner("task_arithmetic").base(A).input(B).input(C).model("weight", Double.NaN, 0.7, -0.4), true),
            new Case("ties, density 1", () -> new KernelRunner("ties").base(A).input(B).input(C).model("weight", Double.NaN, 0.6, 0.5), true),
            new Case("nearswap", () -> new KernelRunner("nearswap").base(A).input(B).global("t", 0.3), true),
            new Case("passthrough, scale", () -> new KernelRunner("passthrough").input(A).model("scale", 0.5), true),
            new Case("ram", () -> new KernelRunner("ram").base(A).input(B).input(C).global("epsilon", 0.3), true),
            new Case("ramplus_tl", () -> new KernelRunner("ramplus_tl").base(A).input(B).input(C).global("epsilon", 0.3), true),
            new Case("ties, density 0.5", () -> new KernelRunner("ties").base(A).input(B).input(C).model("weight", Double.NaN, 0.6, 0.5).model("density", 1, 0.5, 0.5), false),
            new Case("dare_linear, no rescale", () -> new KernelRunner("dare_linear").base(A).input(B).model("weight", Double.NaN, 1).model("density", 1, 0.5).global("rescale", 0), false),
            new Case("breadcrumbs", () -> new KernelRunner("breadcrumbs").base(A).input(B).model("weight", Double.NaN, 1).model("density", 1, 0.8), false),
            new Case("slerp", () -> new KernelRunner("slerp").base(A).input(B).global("t", 0.3), false),
            new Case("della", () -> new KernelRunner("della").shape(64, 64).base(A).input(B).model("weight", Double.NaN, 1).model("density", 1, 0.5), false));

    @Test
    void kernelsDeclareElementwiseExactlyWhenTheyAre() {
        for (Case c : CASES) assertEquals(c.elementwise(), c.runner().get().traits().elementwise(), c.label());
    }

    @Test
    void elementwiseKernelsGiveEachElementTheSameValueInAnyOrder() {
        int[] perm = shuffled(N, 11);
        int checked = 0;
        for (Case c : CASES) {
            if (!c.elementwise()) continue;
            assertTrue(samePermuted(c.runner().get(), perm), c.label() + " gives other values to reordered elements");
            checked++;
        }
        assertEquals(7, checked);
    }

    @Test
    void theCheckCatchesAKernelThatDependsOnTheIndex() {
        // DARE draws its mask from an element's index: a reordered chunk gets other masks. Without
        // rescale it has no passes, so only its declaration keeps it off the reordered path.
        KernelRunner dare = CASES.stream().filter(c -> c.label().startsWith("dare")).findFirst().orElseThrow().runner().get();
        assertEquals(0, dare.traits().reductionPasses());
        assertFalse(samePermuted(dare, shuffled(N, 11)), "reordered DARE elements keep their masks");
    }

    /** Computes the inputs in order as one chunk, and reordered by {@code perm} as another (at another start). */
    private static boolean samePermuted(KernelRunner r, int[] perm) {
        List<float[]> in = r.inputs();
        float[][] plain = new float[in.size()][], moved = new float[in.size()][];
        for (int i = 0; i < in.size(); i++) {
            plain[i] = in.get(i).clone();
            moved[i] = new float[N];
            for (int j = 0; j < N; j++) moved[i][j] = in.get(i)[perm[j]];
        }
        float[] want = new float[N], got = new float[N];
        r.kernel().compute(new Chunk(0, N, plain), want);
        r.kernel().compute(new Chunk(7 * N + 3, N, moved), got);
        for (int j = 0; j < N; j++) {
            if (Float.floatToRawIntBits(got[j]) != Float.floatToRawIntBits(want[perm[j]])) return false;
        }
        return true;
    }

    private static int[] shuffled(int n, long seed) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = n - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }
}
