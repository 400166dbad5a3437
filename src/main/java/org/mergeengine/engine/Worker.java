package org.mergeengine.engine;

import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import org.apache.pekko.Done;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.stream.Materializer;
import org.mergeengine.MergeException;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.plan.PlannedTensor;

/**
 * A worker lane (one per CPU lane, or per GPU). It pulls: asks the supervisor for a task whenever
 * it is free, so a faster lane simply takes more tasks.
 */
final class Worker {
    interface Command {}

    /** Elements [from, to) of a tensor to merge. */
    record Assign(int taskId, PlannedTensor tensor, long from, long to) implements Command {}

    /** Nothing is left; the worker stops. */
    enum NoMoreWork implements Command { INSTANCE }

    private record Finished(int taskId, Throwable error) implements Command {}

    private Worker() {}

    static Behavior<Command> create(ActorRef<MergeSupervisor.Command> supervisor, SafetensorsWriter writer, Journal journal, Device device,
                                    int chunkElements, long retainBytes, Executor io, BufferPool pool) {
        return Behaviors.setup(ctx -> {
            Materializer mat = Materializer.createMaterializer(ctx);
            supervisor.tell(new MergeSupervisor.RequestWork(ctx.getSelf()));
            return Behaviors.receive(Command.class)
                    .onMessage(Assign.class, a -> {
                        CompletionStage<Done> done;
                        long t0 = System.nanoTime();
                        try {
                            done = new TensorJob(a.tensor(), a.from(), a.to(), writer, chunkElements, retainBytes, io, pool).journal(journal).on(device).run(mat);
                        } catch (RuntimeException e) {
                            done = java.util.concurrent.CompletableFuture.failedFuture(e);
                        }
                        done = done.thenCompose(d -> {
                            java.time.Duration extra = device.extraAfter(System.nanoTime() - t0);
                            if (extra.isZero()) return java.util.concurrent.CompletableFuture.completedFuture(d);
                            return java.util.concurrent.CompletableFuture.supplyAsync(() -> d,
                                    java.util.concurrent.CompletableFuture.delayedExecutor(extra.toNanos(), java.util.concurrent.TimeUnit.NANOSECONDS));
                        });
                        ctx.pipeToSelf(done, (ok, err) -> new Finished(a.taskId(), err));
                        return Behaviors.same();
                    })
                    .onMessage(Finished.class, f -> {
                        if (f.error() != null) {
                            supervisor.tell(new MergeSupervisor.TaskFailed(f.taskId(), MergeException.unwrap(f.error())));
                        } else {
                            supervisor.tell(new MergeSupervisor.TaskDone(f.taskId(), ctx.getSelf(), device.name()));
                        }
                        return Behaviors.same();
                    })
                    .onMessage(NoMoreWork.class, n -> Behaviors.stopped())
                    .build();
        });
    }

}
