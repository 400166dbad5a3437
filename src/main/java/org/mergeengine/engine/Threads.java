package org.mergeengine.engine;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

/** Pools for blocking work (file and network I/O), kept off the actors' dispatcher. */
public final class Threads {
    private Threads() {}

    /** A cached pool of daemon threads named {@code prefix-N}: blocking I/O must not keep the JVM alive. */
    public static ExecutorService daemonPool(String prefix) {
        AtomicInteger n = new AtomicInteger();
        return Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, prefix + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
    }
}
