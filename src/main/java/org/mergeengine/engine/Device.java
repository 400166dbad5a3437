package org.mergeengine.engine;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.mergeengine.methods.TensorKernel;
import org.mergeengine.plan.PlannedTensor;

/**
 * What a worker lane runs on. Every lane pulls tasks at its own pace, so a faster device simply
 * takes more of them. The Java kernels run on CPU lanes; {@link #simulated} lanes add a delay per
 * task, to test the scheduling with devices of unequal speed.
 */
public interface Device {
    String name();

    /** Builds the kernel this device runs for a tensor; the Java kernel unless the device has its own for the method. */
    default TensorKernel kernel(PlannedTensor t) {
        return t.method().kernel(t.context());
    }

    /**
     * The most elements the kernel is handed at once in an output pass: the engine feeds Java kernels
     * cache-sized tiles; a device with its own per-call cost (a GPU, a native library) takes whole chunks.
     */
    default int tileElements() {
        return TaskPipeline.TILE;
    }

    /** Time the device adds after a task that took {@code nanos} of work (none for real devices). */
    default Duration extraAfter(long nanos) {
        return Duration.ZERO;
    }

    /** {@code work}, completed {@link #extraAfter} its end, for a task that started at {@code startNanos} ({@link System#nanoTime}). */
    default <T> CompletionStage<T> paced(CompletionStage<T> work, long startNanos) {
        return work.thenCompose(v -> {
            long extra = extraAfter(System.nanoTime() - startNanos).toNanos();
            if (extra == 0) return CompletableFuture.completedFuture(v);
            return CompletableFuture.supplyAsync(() -> v, CompletableFuture.delayedExecutor(extra, TimeUnit.NANOSECONDS));
        });
    }

    static Device cpu(int lane) {
        return () -> "cpu-" + lane;
    }

    /** A device that takes {@code perTask} longer for every task (a slower accelerator, in tests). */
    static Device simulated(String name, Duration perTask) {
        return new Device() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public Duration extraAfter(long nanos) {
                return perTask;
            }
        };
    }
}
