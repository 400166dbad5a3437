package org.mergeengine.engine;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.mergeengine.MergeException;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.plan.MergePlan;

/**
 * Runs merge plans on a Pekko actor system: a supervisor per merge, worker lanes that pull
 * tensors, streamed reads and positional writes into a temporary folder that is moved into place
 * when complete. One engine can run many merges (one after another or at once).
 */
public final class MergeEngine implements AutoCloseable {
    private final ActorSystem<Void> system;
    private final boolean ownsSystem;
    private final ExecutorService io;
    private final AtomicInteger merges = new AtomicInteger();
    private volatile SharedBudget budget;

    public MergeEngine() {
        this(ActorSystem.create(Behaviors.empty(), "merge-engine", loadConfig()), true);
    }

    public MergeEngine(ActorSystem<Void> system) {
        this(system, false);
    }

    private MergeEngine(ActorSystem<Void> system, boolean owns) {
        this.system = system;
        this.ownsSystem = owns;
        this.io = Threads.daemonPool("merge-io");
    }

    static Config loadConfig() {
        return ConfigFactory.load();
    }

    public ActorSystem<Void> system() {
        return system;
    }

    /** Runs {@code plan} into {@code out}; returns when the output folder is complete and in place. */
    public Progress run(MergePlan plan, Path out, MergeOptions opts) {
        try {
            return runAsync(plan, out, opts).get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new MergeException(MergeException.Kind.INTERNAL, "interrupted", e);
        } catch (ExecutionException e) {
            Throwable c = Worker.unwrap(e);
            if (c instanceof MergeException me) throw me;
            if (c instanceof Error err) throw err;
            throw new MergeException(MergeException.Kind.INTERNAL, "merge failed: " + c, c);
        }
    }

    public CompletableFuture<Progress> runAsync(MergePlan plan, Path out, MergeOptions opts) {
        OutputFolder.check(out);
        Path tmp;
        SafetensorsWriter writer = null;
        java.util.Set<String> alreadyDone = new java.util.HashSet<>();
        Journal journal;
        try {
            tmp = OutputFolder.tempFor(out, OutputFolder.planHash(plan));
        } catch (IOException e) {
            throw MergeException.user("cannot create the output folder next to " + out + ": " + e.getMessage());
        }
        if (java.nio.file.Files.isDirectory(tmp)) {
            // An earlier run of this very plan was interrupted: keep every part whose bytes check out.
            try {
                writer = SafetensorsWriter.resume(tmp, plan.layout());
                for (java.util.Map.Entry<String, Long> e : Journal.recorded(tmp).entrySet()) {
                    String key = e.getKey();
                    int at = key.lastIndexOf('@'), dash = key.lastIndexOf('-');
                    String name = key.substring(0, at);
                    org.mergeengine.plan.PlannedTensor t = plan.tensors().stream().filter(x -> x.name().equals(name)).findFirst().orElse(null);
                    if (t == null) continue;
                    long es = t.outDType().size();
                    long from = Long.parseLong(key.substring(at + 1, dash)), to = Long.parseLong(key.substring(dash + 1));
                    if (Journal.intact(tmp, plan.layout(), name, from * es, to * es, e.getValue())) alreadyDone.add(key);
                }
            } catch (IOException | RuntimeException e) {
                if (writer != null) writer.close();
                writer = null;
                alreadyDone.clear();
                OutputFolder.deleteTree(tmp);
            }
        }
        try {
            if (writer == null) {
                java.nio.file.Files.createDirectories(tmp);
                java.nio.file.Files.deleteIfExists(tmp.resolve(Journal.FILE));
                writer = new SafetensorsWriter(tmp, plan.layout());
            }
            writer.flushInBackground(io);
            journal = Journal.open(tmp);
        } catch (IOException e) {
            if (writer != null) writer.close();
            OutputFolder.deleteTree(tmp);
            throw MergeException.user("cannot create output shards in " + tmp + ": " + e.getMessage());
        }
        final SafetensorsWriter w = writer;
        CompletableFuture<Progress> tensorsDone = new CompletableFuture<>();
        MergeSupervisor.Job job = new MergeSupervisor.Job(plan.tensors(), w, journal, alreadyDone, opts.lanes(),
                budget(opts.maxMemoryBytes()), opts.chunkElements(), opts.maxMemoryBytes() / (2L * opts.lanes().size()), io,
                new BufferPool(Math.min(256L << 20, opts.maxMemoryBytes() / 4)), opts.progress(), tensorsDone);
        system.systemActorOf(MergeSupervisor.create(job), "merge-" + merges.incrementAndGet(),
                org.apache.pekko.actor.typed.Props.empty());
        return tensorsDone.handleAsync((p, err) -> {
            journal.close();
            if (err != null) {
                w.close();
                OutputFolder.deleteTree(tmp);
                throw err instanceof RuntimeException re ? re : new java.util.concurrent.CompletionException(err);
            }
            try {
                w.finish();
                OutputFolder.finish(plan, tmp, out, opts);
                return p;
            } catch (IOException e) {
                OutputFolder.deleteTree(tmp);
                throw MergeException.user("finishing the output in " + out + " failed: " + e.getMessage());
            }
        }, io);
    }

    /** One budget for every merge of this engine (the first merge's --max-memory sets it). */
    private synchronized SharedBudget budget(long bytes) {
        if (budget == null) budget = new SharedBudget(bytes);
        return budget;
    }

    @Override
    public void close() {
        io.shutdownNow();
        if (ownsSystem) {
            system.terminate();
            try {
                system.getWhenTerminated().toCompletableFuture().get(30, java.util.concurrent.TimeUnit.SECONDS);
            } catch (Exception ignored) {
                // shutting down; nothing left to save
            }
        }
    }
}
