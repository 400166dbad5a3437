package org.mergeengine.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The engine's buffer pool keeps a retained tensor's arrays for the next tensor, within half the budget. */
class BufferPoolTest {
    static int reused(BufferPool pool, int arrays, int n) {
        List<float[]> out = new ArrayList<>();
        for (int i = 0; i < arrays; i++) out.add(pool.floats(n));
        Set<float[]> given = Collections.newSetFromMap(new IdentityHashMap<>());
        given.addAll(out);
        out.forEach(pool::give);
        int again = 0;
        for (int i = 0; i < arrays; i++) if (given.contains(pool.floats(n))) again++;
        return again;
    }

    @Test
    void aRetainedTensorsArraysAreKeptForTheNext() {
        long budget = 64L << 20, lanes = 2;
        long retain = MergeEngine.retainBytes(budget, (int) lanes); // 16 MB: 4 arrays of 1M floats
        int n = 1 << 20;
        // Half the budget (32 MB) caps the pool: 8 arrays of 4 MB come back, a ninth does not.
        assertEquals(8, reused(MergeEngine.pool(budget, retain), 9, n));
        // A roomy budget (a 6 GB heap's) keeps more than 256 MB, the most a pool used to keep: a
        // retained tensor's 300 MB come back whole.
        long big = 3L << 30;
        assertEquals(75, reused(MergeEngine.pool(big, MergeEngine.retainBytes(big, 2)), 75, n));
    }
}
