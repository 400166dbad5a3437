package org.mergeengine.engine;

import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.Done;
import org.apache.pekko.stream.Materializer;
import org.mergeengine.MergeException;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.plan.MergePlan;

/**
 * Runs tasks of a plan into a temporary output folder that someone else created and owns (the
 * coordinator of a cluster merge). Each task writes its bytes at their planned offsets, syncs them,
 * and reports their CRC32 for the owner to verify and journal; redoing a task writes the same bytes.
 */
public final class TaskRunner implements AutoCloseable {
    private final MergePlan plan;
    private final SafetensorsWriter writer;
    private final Sizing sizing;
    private final Executor io;
    private final BufferPool pool;
    private final SharedBudget budget;
    private final AtomicInteger running = new AtomicInteger();
    private final AtomicInteger peak = new AtomicInteger();

    private TaskRunner(MergePlan plan, SafetensorsWriter writer, Sizing sizing, Executor io, BufferPool pool, SharedBudget budget) {
        this.plan = plan;
        this.writer = writer;
        this.sizing = sizing;
        this.io = io;
        this.pool = pool;
        this.budget = budget;
    }

    /** Opens the shards in {@code tmp}; they must already be laid out for this very plan. */
    public static TaskRunner attach(MergePlan plan, Path tmp, int chunkElements, long maxMemoryBytes, int lanes, MergeEngine engine) {
        try {
            SafetensorsWriter w = SafetensorsWriter.resume(tmp, plan.layout());
            long retain = MergeEngine.retainBytes(maxMemoryBytes, lanes);
            return new TaskRunner(plan, w, new Sizing(chunkElements, retain), engine.io(), MergeEngine.pool(maxMemoryBytes, retain),
                    engine.budget(maxMemoryBytes));
        } catch (IOException e) {
            throw MergeException.user("cannot open the shared output shards in " + tmp + " (" + e.getMessage()
                    + "); every node must see the output folder at the same path");
        }
    }

    public MergePlan plan() {
        return plan;
    }

    /** The most tasks this runner has had running at once. */
    public int peakRunning() {
        return peak.get();
    }

    /** Runs elements [from, to) of tensor number {@code tensor}; completes with the CRC32 of the bytes written. */
    public CompletionStage<Long> run(int tensor, long from, long to, Device device, Materializer mat) {
        // The node's memory budget, shared with its local merges: a task waits for its bytes unless
        // nothing of this job runs here (so every job progresses).
        long bytes = sizing.memoryEstimate(plan.tensors().get(tensor));
        return memory(bytes).thenComposeAsync(v -> start(tensor, from, to, device, mat), io).whenComplete((c, e) -> {
            running.decrementAndGet();
            budget.give(bytes);
        });
    }

    private CompletableFuture<Void> memory(long bytes) {
        if (budget.tryTake(bytes, running.get() == 0)) {
            peak.accumulateAndGet(running.incrementAndGet(), Math::max);
            return CompletableFuture.completedFuture(null);
        }
        CompletableFuture<Void> got = new CompletableFuture<>();
        Runnable[] waiter = new Runnable[1];
        waiter[0] = () -> {
            synchronized (got) { // two releases at once must not both take the bytes
                if (got.isDone() || !budget.tryTake(bytes, running.get() == 0)) return;
                peak.accumulateAndGet(running.incrementAndGet(), Math::max);
                budget.remove(waiter[0]);
                got.complete(null);
            }
        };
        budget.onRelease(waiter[0]);
        waiter[0].run(); // bytes may have come back before the waiter was listed
        return got;
    }

    private CompletionStage<Long> start(int tensor, long from, long to, Device device, Materializer mat) {
        TaskPipeline task;
        CompletionStage<Done> done;
        try {
            task = new TaskPipeline(plan.tensors().get(tensor), from, to, writer, sizing, io, pool);
            done = task.on(device).run(mat);
        } catch (RuntimeException e) {
            return CompletableFuture.failedFuture(e);
        }
        return done.thenApplyAsync(d -> {
            try {
                writer.force();
            } catch (IOException e) {
                throw new MergeException(MergeException.Kind.USER, "syncing the output shards in " + writer.dir() + " failed: " + e.getMessage(), e);
            }
            return task.crc();
        }, io);
    }

    @Override
    public void close() {
        writer.close();
    }
}
