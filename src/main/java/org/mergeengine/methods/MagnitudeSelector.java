package org.mergeengine.methods;

import java.util.Arrays;
import org.mergeengine.MergeException;
import org.mergeengine.tensor.FloatBits;

/**
 * Exact selection of the {@code k} largest (or smallest) magnitudes of a tensor in O(n) time and
 * O(1) memory in n: two streaming passes of 65536-bucket histograms over the float bits of |x|
 * (for non-negative floats the bit patterns sort like the values), first on the high 16 bits, then
 * on the low 16 bits inside the one bucket that holds the cut.
 *
 * <p>Equal magnitudes at the cut are decided by flat index, so the result is deterministic:
 * {@code lowIndexFirst} takes the tied elements with the lowest indices first, otherwise the
 * highest. Membership is then asked element by element, in index order, in a third pass.
 */
final class MagnitudeSelector {
    private long k;
    /** The tensor's size for a {@link #deferred} selection, else -1. */
    private long n = -1;
    private final boolean largest;
    private final boolean lowIndexFirst;
    /** int counts: half the cache footprint of longs (the increments land at random, so that is what costs). */
    private int[] hist; // allocated at the first count: a selection that never counts (k known to be 0 or n) holds none
    private int bucket;
    private long beyond;        // members strictly beyond the cut bucket, then beyond the exact cut value
    private int cut;            // the magnitude bits at the cut
    private long tiesTaken;     // how many elements equal to the cut are members
    private long tiesTotal;
    private long seen;          // ties seen so far in the current membership pass
    private boolean all, none;
    private int[] scratch;
    private static final int SCRATCH = 4096;

    MagnitudeSelector(long k, long n, boolean largest, boolean lowIndexFirst) {
        if (n > Integer.MAX_VALUE) {
            throw new MergeException(MergeException.Kind.USER,
                    "a tensor of " + n + " elements is too large for top-k selection (at most " + Integer.MAX_VALUE + ")");
        }
        this.k = k;
        this.largest = largest;
        this.lowIndexFirst = lowIndexFirst;
        this.none = k <= 0;
        this.all = k >= n;
    }

    /**
     * A selection whose k is only known after the first pass (sce counts its candidates in the pass
     * that also builds the first histogram): call {@link #k(long)} before {@link #endHigh()}.
     */
    static MagnitudeSelector deferred(long n, boolean largest, boolean lowIndexFirst) {
        MagnitudeSelector s = new MagnitudeSelector(0, n, largest, lowIndexFirst);
        s.n = n;
        // Until k is known, neither "take all" nor "take none" holds: the first pass must count.
        s.all = false;
        s.none = false;
        return s;
    }

    /** Sets k for a {@link #deferred} selection. */
    void k(long k) {
        if (n < 0) throw new IllegalStateException("k is set at construction");
        this.k = k;
        this.none = k <= 0;
        this.all = k >= n;
    }

    private int[] scratch() {
        if (scratch == null) scratch = new int[SCRATCH];
        return scratch;
    }

    static int key(float x) {
        return Float.floatToRawIntBits(x) & 0x7fffffff;
    }

    boolean trivial() {
        return all || none;
    }

    void countHigh(float[] v, int len) {
        countHigh(v, 0, len);
    }

    void countHigh(float[] v, int off, int len) {
        if (trivial()) return;
        if (hist == null) hist = new int[65536];
        int[] h = hist;
        for (int i = off; i < off + len; i++) h[key(v[i]) >>> 16]++;
    }

    void endHigh() {
        if (trivial()) return;
        if (hist == null) hist = new int[65536];
        long cum = 0;
        int b = largest ? 65535 : 0;
        int step = largest ? -1 : 1;
        for (; b >= 0 && b <= 65535; b += step) {
            if (cum + hist[b] >= k) break;
            cum += hist[b];
        }
        bucket = b;
        beyond = cum;
        Arrays.fill(hist, 0);
    }

    void countLow(float[] v, int len) {
        countLow(v, 0, len);
    }

    void countLow(float[] v, int off, int len) {
        if (trivial()) return;
        int[] h = hist;
        int bkt = bucket;
        int[] keys = scratch();
        for (int s = 0; s < len; s += SCRATCH) {
            int n = Math.min(SCRATCH, len - s);
            FloatBits.toInts(v, off + s, n, keys, 0);
            // On bf16 weights a fifth of all elements can share the cut's bucket, in no order: a
            // branch per element mispredicts often. The matches are compacted first, without branches.
            int m = 0;
            for (int i = 0; i < n; i++) {
                int key = keys[i] & 0x7fffffff;
                keys[m] = key & 0xffff;
                m += (key >>> 16) == bkt ? 1 : 0;
            }
            for (int i = 0; i < m; i++) h[keys[i]]++;
        }
    }

    void endLow() {
        if (trivial()) return;
        long cum = beyond;
        int l = largest ? 65535 : 0;
        int step = largest ? -1 : 1;
        for (; l >= 0 && l <= 65535; l += step) {
            if (cum + hist[l] >= k) break;
            cum += hist[l];
        }
        cut = (bucket << 16) | l;
        tiesTotal = hist[l];
        tiesTaken = k - cum;
        hist = null;
    }

    /** Call before each membership pass over the tensor. */
    void restart() {
        seen = 0;
    }

    /**
     * Membership of the next {@code len} elements (in index order) as int masks, -1 for members and
     * 0 otherwise.
     *
     * <p>The member ties (elements equal to the cut) are one contiguous run of the ties in index
     * order, so a call whose ties are all members, or none, needs no per-element decision: only
     * the call that holds the run's boundary goes element by element. On bf16 weights a fifth of
     * all elements can be ties, and a branch per element mispredicts often.
     */
    void fill(float[] v, int len, int[] out) {
        if (none || all) {
            Arrays.fill(out, 0, len, all ? -1 : 0);
            return;
        }
        int c = cut;
        FloatBits.toInts(v, 0, len, out, 0);
        long ties = 0;
        if (tiesTotal > 0) {
            int t = 0;
            for (int i = 0; i < len; i++) t += (((out[i] & 0x7fffffff) ^ c) - 1) >>> 31; // 1 where the magnitude is the cut
            ties = t;
        }
        long first = lowIndexFirst ? 0 : tiesTotal - tiesTaken, end = first + tiesTaken; // member tie ordinals
        long from = seen, to = seen + ties;
        seen = to;
        boolean allMembers = ties > 0 && from >= first && to <= end;
        if (ties == 0 || allMembers || to <= first || from >= end) {
            int tie = allMembers ? -1 : 0;
            if (largest) {
                for (int i = 0; i < len; i++) {
                    int key = out[i] & 0x7fffffff;
                    out[i] = ((c - key) >> 31) | ((((key ^ c) - 1) >> 31) & tie);
                }
            } else {
                for (int i = 0; i < len; i++) {
                    int key = out[i] & 0x7fffffff;
                    out[i] = ((key - c) >> 31) | ((((key ^ c) - 1) >> 31) & tie);
                }
            }
            return;
        }
        long s = from;
        for (int i = 0; i < len; i++) {
            int key = out[i] & 0x7fffffff;
            if (key == c) {
                out[i] = s >= first && s < end ? -1 : 0;
                s++;
            } else {
                out[i] = largest ? (c - key) >> 31 : (key - c) >> 31;
            }
        }
    }

    /** Whether the next element (in index order) with magnitude |x| is in the selected set. */
    boolean member(float x) {
        if (none) return false;
        if (all) return true;
        int key = key(x);
        if (key == cut) {
            long s = seen++;
            return lowIndexFirst ? s < tiesTaken : s >= tiesTotal - tiesTaken;
        }
        return largest ? key > cut : key < cut;
    }
}
