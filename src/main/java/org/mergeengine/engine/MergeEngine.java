package org.mergeengine.engine;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.BootstrapSetup;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.mergeengine.MergeException;
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
        this(ActorSystem.create(Behaviors.empty(), "merge-engine", localSetup()), true);
    }

    public MergeEngine(ActorSystem<Void> system) {
        this(system, false);
    }

    private MergeEngine(ActorSystem<Void> system, boolean owns) {
        this.system = system;
        this.ownsSystem = owns;
        this.io = Threads.daemonPool("merge-io");
    }

    /**
     * The settings of an engine's own (local) actor system. Its messages never leave the JVM, so the
     * serialization extension does not start with it: building the serializers that the cluster
     * and Jackson modules register (protobuf, CBOR) was a noticeable part of every start. Anything that does
     * serialize still gets the extension, created at its first use.
     */
    static Config loadConfig() {
        return withoutSerialization(ConfigFactory.load(LocalReferenceLoader.get()));
    }

    /** {@link #loadConfig()} with the class loader the actor system must read its reference settings through. */
    static BootstrapSetup localSetup() {
        return BootstrapSetup.create(loadConfig()).withClassloader(LocalReferenceLoader.get());
    }

    static Config withoutSerialization(Config c) {
        String path = "pekko.library-extensions";
        List<String> ext = new ArrayList<>(c.getStringList(path));
        ext.removeIf("org.apache.pekko.serialization.SerializationExtension$"::equals); // every copy: a merged config can list it twice
        return c.withValue(path, ConfigValueFactory.fromIterable(ext));
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
            Throwable c = MergeException.unwrap(e);
            if (c instanceof MergeException me) throw me;
            if (c instanceof Error err) throw err;
            throw new MergeException(MergeException.Kind.INTERNAL, "merge failed: " + c, c);
        }
    }

    public CompletableFuture<Progress> runAsync(MergePlan plan, Path out, MergeOptions opts) {
        StagedOutput staged = StagedOutput.open(plan, out, io);
        CompletableFuture<Progress> tensorsDone = new CompletableFuture<>();
        MergeSupervisor.Job job = new MergeSupervisor.Job(staged, opts.lanes(),
                budget(opts.maxMemoryBytes()), sizing(opts), io,
                pool(opts.maxMemoryBytes(), retainBytes(opts)), opts.progress(), tensorsDone);
        system.systemActorOf(MergeSupervisor.create(job), "merge-" + merges.incrementAndGet(),
                Props.empty());
        return tensorsDone.handleAsync((p, err) -> {
            if (err != null) {
                staged.abort();
                throw err instanceof RuntimeException re ? re : new CompletionException(err);
            }
            try {
                NonFinite.check(plan, opts.failOnNonFinite());
            } catch (MergeException e) {
                staged.abort();
                throw e;
            }
            staged.finish(opts);
            return p;
        }, io);
    }

    /**
     * The chunk buffers' pool: room for one retained tensor's arrays and the output pass's besides,
     * at most half the budget. A pool smaller than a retained tensor dropped most of its arrays
     * after each such tensor, and the next one allocated fresh ones: with a large heap, G1 placed
     * them in memory never touched before, and zeroing and faulting in those pages took much of
     * a model_stock merge's CPU, and raised its peak memory.
     */
    static BufferPool pool(long budget, long retainBytes) {
        long base = Math.min(256L << 20, budget / 4);
        return new BufferPool(Math.min(Math.max(base, retainBytes + (64L << 20)), Math.max(base, budget / 2)));
    }

    /** How a local merge with these options cuts and sizes its tasks. */
    public static Sizing sizing(MergeOptions opts) {
        return new Sizing(opts.chunkElements(), retainBytes(opts));
    }

    /** Bytes a task may keep in memory to run its passes without re-reading its inputs. */
    public static long retainBytes(MergeOptions opts) {
        return retainBytes(opts.maxMemoryBytes(), opts.lanes().size());
    }

    static long retainBytes(long maxMemoryBytes, int lanes) {
        return maxMemoryBytes / (2L * Math.max(1, lanes));
    }

    public ExecutorService io() {
        return io;
    }

    /** One budget for every merge of this engine (the first merge's --max-memory sets it), cluster tasks included. */
    synchronized SharedBudget budget(long bytes) {
        if (budget == null) budget = new SharedBudget(bytes);
        return budget;
    }

    @Override
    public void close() {
        io.shutdownNow();
        if (ownsSystem) {
            system.terminate();
            try {
                system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
            } catch (Exception ignored) {
                // shutting down; nothing left to save
            }
        }
    }
}
