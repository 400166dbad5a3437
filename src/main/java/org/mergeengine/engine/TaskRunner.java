package org.mergeengine.engine;

import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
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
    private final int chunkElements;
    private final long retainBytes;
    private final Executor io;
    private final BufferPool pool;

    private TaskRunner(MergePlan plan, SafetensorsWriter writer, int chunkElements, long retainBytes, Executor io, BufferPool pool) {
        this.plan = plan;
        this.writer = writer;
        this.chunkElements = chunkElements;
        this.retainBytes = retainBytes;
        this.io = io;
        this.pool = pool;
    }

    /** Opens the shards in {@code tmp}; they must already be laid out for this very plan. */
    public static TaskRunner attach(MergePlan plan, Path tmp, int chunkElements, long maxMemoryBytes, int lanes, Executor io) {
        try {
            SafetensorsWriter w = SafetensorsWriter.resume(tmp, plan.layout());
            return new TaskRunner(plan, w, chunkElements, maxMemoryBytes / (2L * Math.max(1, lanes)), io,
                    new BufferPool(Math.min(256L << 20, maxMemoryBytes / 4)));
        } catch (IOException e) {
            throw MergeException.user("cannot open the shared output shards in " + tmp + " (" + e.getMessage()
                    + "); every node must see the output folder at the same path");
        }
    }

    public MergePlan plan() {
        return plan;
    }

    /** Runs elements [from, to) of tensor number {@code tensor}; completes with the CRC32 of the bytes written. */
    public CompletionStage<Long> run(int tensor, long from, long to, Device device, Materializer mat) {
        TensorJob job;
        CompletionStage<org.apache.pekko.Done> done;
        try {
            job = new TensorJob(plan.tensors().get(tensor), from, to, writer, chunkElements, retainBytes, io, pool);
            done = job.on(device).run(mat);
        } catch (RuntimeException e) {
            return CompletableFuture.failedFuture(e);
        }
        return done.thenApplyAsync(d -> {
            try {
                writer.force();
            } catch (IOException e) {
                throw new MergeException(MergeException.Kind.USER, "syncing the output shards in " + writer.dir() + " failed: " + e.getMessage(), e);
            }
            return job.crc();
        }, io);
    }

    @Override
    public void close() {
        writer.close();
    }
}
