package org.mergeengine.tensor;

import java.nio.charset.StandardCharsets;

/**
 * Counter-based random numbers: the draw for element j of model i in a tensor is a pure function of
 * (seed, tensor name, i, j). Output bytes therefore never depend on chunking, worker count,
 * scheduling order or machine.
 */
public final class CounterRandom {
    private CounterRandom() {}

    public static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    /** A stream key for one model's draws within one tensor. */
    public static long streamKey(long seed, String tensorName, int model) {
        long h = 0xcbf29ce484222325L; // FNV-1a over the name's UTF-8 bytes
        for (byte b : tensorName.getBytes(StandardCharsets.UTF_8)) {
            h ^= b & 0xff;
            h *= 0x100000001b3L;
        }
        return mix(mix(seed ^ 0x9e3779b97f4a7c15L) ^ h) + (model + 1) * 0x632be59bd9b4e019L;
    }

    /** Uniform in [0, 1) for element {@code index} of the stream. */
    public static double uniform(long streamKey, long index) {
        return (mix(streamKey + index * 0x9e3779b97f4a7c15L) >>> 11) * 0x1.0p-53;
    }

    /**
     * The threshold that decides {@code uniform(key, i) < p} in integers: uniform draws m / 2^53 for
     * an integer m, and m / 2^53 < p exactly when m < ceil(p * 2^53) (the product is exact).
     */
    public static long below(double p) {
        return (long) Math.ceil(p * 0x1.0p53);
    }

    /** -1 when {@code uniform(streamKey, index) < p} for {@code threshold = below(p)}, else 0: no double in the loop. */
    public static int keepMask(long streamKey, long index, long threshold) {
        long m = mix(streamKey + index * 0x9e3779b97f4a7c15L) >>> 11;
        return (int) ((m - threshold) >> 63);
    }

    /**
     * {@code out[j] = keepMask(streamKey, start + j, threshold)} for j in [0, len), with
     * {@code scratch} of at least len longs. Written as passes over a long array, which the JIT
     * vectorises, unlike the loop over keepMask, where the int index widened to long in every step
     * keeps it scalar.
     */
    public static void keepMasks(long streamKey, long start, long threshold, int[] out, int len, long[] scratch) {
        long z = streamKey + start * 0x9e3779b97f4a7c15L;
        for (int j = 0; j < len; j++) {
            scratch[j] = z;
            z += 0x9e3779b97f4a7c15L;
        }
        for (int j = 0; j < len; j++) scratch[j] = ((mix(scratch[j]) >>> 11) - threshold) >> 63;
        for (int j = 0; j < len; j++) out[j] = (int) scratch[j];
    }
}
