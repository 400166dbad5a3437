package org.mergeengine.cli;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import org.mergeengine.engine.MergeEngine;
import org.slf4j.LoggerFactory;

/**
 * The actor system of a plain merge, started the moment the process starts. It takes about half a
 * second on two cores and needs nothing from the command line, so it starts beside the parsing of
 * the options and the config instead of after them. Commands that need no local engine (help,
 * version, a dry run, a cluster merge, the subcommands) never start it.
 */
final class EarlyEngine {
    private final CompletableFuture<MergeEngine> engine = CompletableFuture.supplyAsync(MergeEngine::new);
    private final AtomicBoolean taken = new AtomicBoolean();

    private EarlyEngine() {}

    /** An engine starting for the merge these arguments ask for, or null when they may not need one. */
    static EarlyEngine forArgs(List<String> args) {
        if (args.isEmpty()) return null;
        for (String a : args) {
            if (a.equals("-h") || a.equals("--help") || a.equals("-V") || a.equals("--version") || a.equals("--dry-run")
                    || a.equals("--cluster") || a.startsWith("--cluster=")) {
                return null;
            }
        }
        // Logging starts here, on this thread: started by the actor system on its own thread, it
        // would hand this thread stand-in loggers while it initialises, whose level cannot be set.
        LoggerFactory.getILoggerFactory();
        return new EarlyEngine();
    }

    /** The engine for the merge; from then on closing it is the taker's job. */
    CompletableFuture<MergeEngine> take() {
        taken.set(true);
        return engine;
    }

    /** Closes the engine when the run ended before the merge took it (a bad option or config). */
    void closeUnlessTaken() {
        if (!taken.get()) engine.thenAccept(MergeEngine::close).exceptionally(e -> null).join();
    }
}
