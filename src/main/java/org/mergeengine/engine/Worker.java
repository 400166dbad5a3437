package org.mergeengine.engine;

import java.util.concurrent.CompletableFuture;
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
    /** The worker's protocol: what its supervisor tells it, and its own task's end. */
    sealed interface Command {}

    /** Elements [from, to) of a tensor to merge. */
    record Assign(int taskId, PlannedTensor tensor, long from, long to) implements Command {}

    /** Nothing is left; the worker stops. */
    enum NoMoreWork implements Command { INSTANCE }

    private record Finished(int taskId, Throwable error) implements Command {}

    private Worker() {}

    static Behavior<Command> create(ActorRef<MergeSupervisor.Command> supervisor, SafetensorsWriter writer, Journal journal, Device device,
                                    Sizing sizing, Executor io, BufferPool pool) {
        return Behaviors.setup(ctx -> {
            Materializer mat = Materializer.createMaterializer(ctx);
            supervisor.tell(new MergeSupervisor.RequestWork(ctx.getSelf()));
            return Behaviors.receive(Command.class)
                    .onMessage(Assign.class, a -> {
                        CompletionStage<Done> done;
                        long t0 = System.nanoTime();
                        try {
                            done = new TaskPipeline(a.tensor(), a.from(), a.to(), writer, sizing, io, pool).journal(journal).on(device).run(mat);
                        } catch (RuntimeException e) {
                            done = CompletableFuture.failedFuture(e);
                        }
                        ctx.pipeToSelf(device.paced(done, t0), (ok, err) -> new Finished(a.taskId(), err));
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
