package org.mergeengine.engine;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.WeakHashMap;
import java.util.concurrent.ConcurrentHashMap;
import org.mergeengine.MergeException;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.TensorFile;
import org.mergeengine.plan.MergePlan;
import org.mergeengine.plan.PlannedTensor;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * NaN and infinite values in the inputs, counted as they are read. One NaN spreads through a
 * whole slerp, model_stock or karcher tensor, so a merge says which model and tensor hold them
 * (or, with --fail-on-nonfinite, stops before the output is moved into place). Inputs copied byte
 * for byte are scanned too: the values pass on unchanged, but the output holds them. Counts are kept by
 * input file, tensor and element offset, so a chunk read twice (a method's passes) counts once.
 */
public final class NonFinite {
    private static final Logger LOG = LoggerFactory.getLogger(NonFinite.class);
    private static final Map<TensorFile, Map<String, Map<Long, Integer>>> SEEN = Collections.synchronizedMap(new WeakHashMap<>());

    private NonFinite() {}

    /** NaN and infinite values among {@code len} floats at {@code off}. */
    public static int count(float[] v, int off, int len) {
        int n = 0;
        for (int i = off, e = off + len; i < e; i++) if (!Float.isFinite(v[i])) n++;
        return n;
    }

    /** NaN and infinite values among the encoded elements from the buffer's position to its limit (the position is kept). */
    public static int count(DType dt, ByteBuffer b) {
        ByteBuffer l = b.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int from = l.position(), to = l.limit(), n = 0;
        switch (dt) {
            case F32 -> { for (int i = from; i + 4 <= to; i += 4) if ((l.getInt(i) & 0x7f800000) == 0x7f800000) n++; }
            case F16 -> n = count16(l, from, to, (short) 0x7c00);
            case BF16 -> n = count16(l, from, to, (short) 0x7f80);
            case F64 -> { for (int i = from; i + 8 <= to; i += 8) if ((l.getLong(i) & 0x7ff0000000000000L) == 0x7ff0000000000000L) n++; }
            case F8_E5M2 -> { for (int i = from; i < to; i++) if ((l.get(i) & 0x7c) == 0x7c) n++; }
            case F8_E4M3 -> { for (int i = from; i < to; i++) if ((l.get(i) & 0x7f) == 0x7f) n++; }
            default -> { } // integers are always finite
        }
        return n;
    }

    /**
     * Two-byte values whose exponent bits are all set. Every input byte passes through here, so it
     * first asks four values at a time whether any of them is non-finite (almost never) and counts
     * one by one only in the words that hold one.
     */
    private static int count16(ByteBuffer l, int from, int to, short exponent) {
        long mask = (exponent & 0xffffL) * 0x0001000100010001L;
        int n = 0, i = from;
        for (; i + 8 <= to; i += 8) {
            long t = (l.getLong(i) & mask) ^ mask; // a 16-bit lane is zero where that value is non-finite
            if (((t - 0x0001000100010001L) & ~t & 0x8000800080008000L) != 0) {
                for (int j = i; j < i + 8; j += 2) if ((l.getShort(j) & exponent) == exponent) n++;
            }
        }
        for (; i + 2 <= to; i += 2) if ((l.getShort(i) & exponent) == exponent) n++;
        return n;
    }

    /** Counts decoded input values: elements {@code [start, start+len)} of {@code in}, in {@code v[0..len)}. */
    static void seen(PlannedTensor.Input in, long start, int len, float[] v) {
        int n = count(v, 0, len);
        if (n > 0) record(in.source(), start, n);
    }

    /** Counts an input chunk still in its stored encoding, starting at element {@code start}. */
    static void seen(ModelFolder.Located src, long start, ByteBuffer b) {
        int n = count(src.info().dtype(), b);
        if (n > 0) record(src, start, n);
    }

    /** As {@link #seen(ModelFolder.Located, long, ByteBuffer)}, passing {@code through} on (for a stream step). */
    static <T> T seen(ModelFolder.Located src, long start, ByteBuffer b, T through) {
        seen(src, start, b);
        return through;
    }

    private static void record(ModelFolder.Located src, long start, int n) {
        Map<String, Map<Long, Integer>> byTensor;
        synchronized (SEEN) {
            byTensor = SEEN.computeIfAbsent(src.file(), f -> new ConcurrentHashMap<>());
        }
        byTensor.computeIfAbsent(src.info().name(), t -> new ConcurrentHashMap<>()).put(start, n);
    }

    /**
     * What the plan's inputs held, one line per model and tensor, and forgets it. Logged as warnings;
     * with {@code fail} set, any at all is an error that names them.
     */
    public static List<String> check(MergePlan plan, boolean fail) {
        List<String> found = new ArrayList<>();
        for (Map.Entry<String, ModelFolder> m : plan.models().entrySet()) {
            for (TensorFile f : m.getValue().files()) {
                Map<String, Map<Long, Integer>> byTensor = SEEN.remove(f);
                if (byTensor == null) continue;
                for (Map.Entry<String, Map<Long, Integer>> t : new TreeMap<>(byTensor).entrySet()) {
                    long total = 0;
                    for (int c : t.getValue().values()) total += c;
                    found.add("model " + m.getKey() + ": tensor " + t.getKey() + " holds " + total + " NaN or infinite value" + (total == 1 ? "" : "s")
                            + " (" + f.path().getFileName() + ")");
                }
            }
        }
        if (found.isEmpty()) return found;
        if (fail) {
            throw MergeException.user("the inputs hold NaN or infinite values, and --fail-on-nonfinite makes that an error: " + String.join("; ", found));
        }
        for (String w : found) LOG.warn("{}; it spreads into what it is merged with (--fail-on-nonfinite makes this an error)", w);
        return found;
    }
}
