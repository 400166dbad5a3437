package org.mergeengine.methods;

import java.util.Arrays;

/**
 * The order of a row's elements by ascending magnitude, equal magnitudes by index: the ranks
 * DELLA draws its keep probabilities from.
 *
 * <p>A stable radix sort on the 31 magnitude bits of each float, in three passes of 11, 11 and 9
 * bits, with the element's index as its payload. Stability is what gives index order among equal
 * magnitudes, since the indices enter in order. Why not {@code Arrays.sort} of (magnitude, index)
 * pairs: DELLA's merges spent most of their time sorting, and this sort takes a fraction of that
 * (benchmarks/README.md has the figures).
 */
final class MagnitudeRanks {
    private static final int BITS = 11, BUCKETS = 1 << BITS, MASK = BUCKETS - 1;

    private int[] keys = new int[0], tmp = new int[0];
    private final int[] counts = new int[3 * BUCKETS];

    /**
     * Fills {@code order[0..n)} with the indices {@code 0..n-1} of {@code v[off..off+n)}, sorted by
     * ascending {@code |v|} (the float bits without the sign, which sort as the values do), equal
     * magnitudes by ascending index.
     */
    void ascending(float[] v, int off, int n, int[] order) {
        if (keys.length < n) {
            keys = new int[n];
            tmp = new int[n];
        }
        int[] k = keys, c = counts;
        Arrays.fill(c, 0);
        for (int i = 0; i < n; i++) {
            int key = MagnitudeSelector.key(v[off + i]);
            k[i] = key;
            c[key & MASK]++;
            c[BUCKETS + ((key >>> BITS) & MASK)]++;
            c[2 * BUCKETS + (key >>> (2 * BITS))]++;
        }
        int[] src = tmp, dst = order;
        for (int i = 0; i < n; i++) src[i] = i;
        for (int d = 0; d < 3; d++) {
            int base = d * BUCKETS, shift = d * BITS;
            boolean oneBucket = false;
            int sum = 0;
            for (int b = 0; b < BUCKETS; b++) {
                int x = c[base + b];
                oneBucket |= x == n;
                c[base + b] = sum;
                sum += x;
            }
            if (oneBucket) continue; // every key has this digit: the pass would move nothing
            for (int i = 0; i < n; i++) {
                int j = src[i];
                dst[c[base + ((k[j] >>> shift) & MASK)]++] = j;
            }
            int[] t = src;
            src = dst;
            dst = t;
        }
        if (src != order) System.arraycopy(src, 0, order, 0, n);
    }
}
