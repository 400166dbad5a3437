package org.mergeengine.engine;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Chunk buffers shared by every task of an engine. Chunks have a handful of sizes, and
 * allocating them afresh made the JVM spend its time in full collections: large float arrays are
 * "humongous" objects for G1, and direct buffers are only freed by a GC. Buffers are handed out by
 * exact size; at most {@code limit} bytes wait in the pool, the rest is left to the GC.
 */
final class BufferPool {
    private static final int MIN_POOLED = 1 << 14;
    private final Map<Integer, ConcurrentLinkedDeque<float[]>> floats = new ConcurrentHashMap<>();
    private final Map<Integer, ConcurrentLinkedDeque<ByteBuffer>> bytes = new ConcurrentHashMap<>();
    private final AtomicLong pooled = new AtomicLong();
    private final long limit;

    BufferPool(long limit) {
        this.limit = limit;
    }

    float[] floats(int n) {
        if (n >= MIN_POOLED) {
            float[] f = floats.computeIfAbsent(n, k -> new ConcurrentLinkedDeque<>()).poll();
            if (f != null) {
                pooled.addAndGet(-4L * n);
                return f;
            }
        }
        return new float[n];
    }

    void give(float[] f) {
        if (f.length < MIN_POOLED || pooled.get() + 4L * f.length > limit) return;
        pooled.addAndGet(4L * f.length);
        floats.computeIfAbsent(f.length, k -> new ConcurrentLinkedDeque<>()).push(f);
    }

    /** A cleared little-endian direct buffer of exactly {@code n} bytes capacity. */
    ByteBuffer bytes(int n) {
        ByteBuffer b = bytes.computeIfAbsent(n, k -> new ConcurrentLinkedDeque<>()).poll();
        if (b != null) {
            pooled.addAndGet(-n);
            return b.clear();
        }
        return ByteBuffer.allocateDirect(n).order(ByteOrder.LITTLE_ENDIAN);
    }

    void give(ByteBuffer b) {
        if (!b.isDirect() || pooled.get() + b.capacity() > limit) return;
        pooled.addAndGet(b.capacity());
        bytes.computeIfAbsent(b.capacity(), k -> new ConcurrentLinkedDeque<>()).push(b);
    }
}
