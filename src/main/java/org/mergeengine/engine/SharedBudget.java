package org.mergeengine.engine;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The memory budget of one engine, shared by every merge it runs at once (the stages of a
 * multi-merge, say). A supervisor takes bytes for each task it starts and returns them when the
 * task ends; a supervisor that had to wait is told when bytes come back.
 */
final class SharedBudget {
    private final long limit;
    private long used;
    private final List<Runnable> waiters = new CopyOnWriteArrayList<>();

    SharedBudget(long limit) {
        this.limit = limit;
    }

    /** Takes {@code bytes} if they fit, or unconditionally when the caller has nothing running (so every merge progresses). */
    synchronized boolean tryTake(long bytes, boolean callerIdle) {
        if (callerIdle || used + bytes <= limit) {
            used += bytes;
            return true;
        }
        return false;
    }

    void give(long bytes) {
        synchronized (this) {
            used -= bytes;
        }
        for (Runnable w : waiters) w.run();
    }

    void onRelease(Runnable r) {
        waiters.add(r);
    }

    void remove(Runnable r) {
        waiters.remove(r);
    }
}
