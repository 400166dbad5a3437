package org.mergeengine.engine;

import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import org.apache.pekko.Done;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.stream.Materializer;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.plan.PlannedTensor;

/**
 * A worker lane (one per CPU lane, or per GPU). It pulls: asks the supervisor for a task whenever
 * it is free, so a faster lane simply takes more tasks.
 */
final class Worker {
    interface Command {}

    /** A tensor to merge. */
    record Assign(int taskId, PlannedTensor tensor) implements Command {}

    /** Nothing is left; the worker stops. */
    enum NoMoreWork implements Command { INSTANCE }

    private record Finished(int taskId, Throwable error) implements Command {}

    private Worker() {}

    static Behavior<Command> create(ActorRef<MergeSupervisor.Command> supervisor, SafetensorsWriter writer,
                                    int chunkElements, long retainBytes, Executor io, BufferPool pool) {
        return Behaviors.setup(ctx -> {
            Materializer mat = Materializer.createMaterializer(ctx);
            supervisor.tell(new MergeSupervisor.RequestWork(ctx.getSelf()));
            return Behaviors.receive(Command.class)
                    .onMessage(Assign.class, a -> {
                        CompletionStage<Done> done;
                        try {
                            done = new TensorJob(a.tensor(), writer, chunkElements, retainBytes, io, pool).run(mat);
                        } catch (RuntimeException e) {
                            done = java.util.concurrent.CompletableFuture.failedFuture(e);
                        }
                        ctx.pipeToSelf(done, (ok, err) -> new Finished(a.taskId(), err));
                        return Behaviors.same();
                    })
                    .onMessage(Finished.class, f -> {
                        if (f.error() != null) {
                            supervisor.tell(new MergeSupervisor.TaskFailed(f.taskId(), unwrap(f.error())));
                        } else {
                            supervisor.tell(new MergeSupervisor.TaskDone(f.taskId(), ctx.getSelf()));
                        }
                        return Behaviors.same();
                    })
                    .onMessage(NoMoreWork.class, n -> Behaviors.stopped())
                    .build();
        });
    }

    static Throwable unwrap(Throwable t) {
        while ((t instanceof java.util.concurrent.CompletionException || t instanceof java.util.concurrent.ExecutionException)
                && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }
}
