package org.mergeengine.engine;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * Drives one local merge's {@link WorkState}: hands tasks to worker lanes as they ask, in plan
 * order, while the memory the running tasks hold stays under the engine's shared budget (a task
 * larger than the budget runs alone). Completes {@code result} when every tensor is written, or
 * with the first failure.
 */
final class MergeSupervisor extends AbstractBehavior<MergeSupervisor.Command> {
    /** The supervisor's protocol: what its workers and the shared budget tell it. */
    sealed interface Command {}

    /** A worker lane is free. */
    record RequestWork(ActorRef<Worker.Command> worker) implements Command {}

    record TaskDone(int taskId, ActorRef<Worker.Command> worker, String lane) implements Command {}

    record TaskFailed(int taskId, Throwable error) implements Command {}

    /** Memory came back to the shared budget (another merge finished a task). */
    enum Wake implements Command { INSTANCE }

    /** Everything the supervisor needs for one merge. */
    record Job(StagedOutput staged, List<Device> devices, SharedBudget budget, Sizing sizing,
               Executor io, BufferPool pool, Consumer<Progress> progress, CompletableFuture<Progress> result) {}

    private final Job job;
    private final WorkState<ActorRef<Worker.Command>> state;
    private final WorkState.Admission admission;
    private boolean failed;
    private final Runnable wake;

    static Behavior<Command> create(Job job) {
        return Behaviors.setup(ctx -> new MergeSupervisor(ctx, job));
    }

    private MergeSupervisor(ActorContext<Command> ctx, Job job) {
        super(ctx);
        this.job = job;
        // A local task fails the merge at its first failure; local lanes have no deadline.
        this.state = job.staged().schedule(job.sizing(), job.devices().size(), 1, WorkState.Deadline.NONE, System.nanoTime());
        this.admission = (bytes, nothingRunning) -> job.budget().tryTake(bytes, nothingRunning);
        ActorRef<Command> self = ctx.getSelf();
        this.wake = () -> self.tell(Wake.INSTANCE);
        job.budget().onRelease(wake);
        if (state.queueEmpty()) job.result().complete(state.progress(System.nanoTime()));
        int w = 0;
        for (Device d : job.devices()) {
            ctx.spawn(Worker.create(ctx.getSelf(), job.staged().writer(), job.staged().journal(), d, job.sizing(), job.io(), job.pool()),
                    "worker-" + (w++), Props.empty());
        }
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(RequestWork.class, r -> {
                    state.ready(r.worker());
                    dispatch();
                    if (state.allDone() && state.running() == 0) {
                        job.budget().remove(wake);
                        return Behaviors.stopped(); // everything was written by an earlier, interrupted run
                    }
                    return this;
                })
                .onMessage(Wake.class, w -> {
                    dispatch();
                    return this;
                })
                .onMessage(TaskDone.class, d -> {
                    long bytes = state.entry(d.taskId()).memoryBytes();
                    if (!state.finished(d.taskId(), d.worker())) return this;
                    job.budget().give(bytes);
                    state.confirmed(d.taskId(), d.lane()); // the lane journaled the part's CRC itself
                    Progress p = state.progress(System.nanoTime());
                    if (job.progress() != null) job.progress().accept(p);
                    if (state.allDone()) {
                        job.budget().remove(wake);
                        job.result().complete(p);
                        return Behaviors.stopped();
                    }
                    dispatch();
                    return this;
                })
                .onMessage(TaskFailed.class, f -> {
                    failed = true;
                    job.budget().remove(wake);
                    job.budget().give(state.inFlightBytes());
                    job.result().completeExceptionally(f.error());
                    return Behaviors.stopped();
                })
                .build();
    }

    private void dispatch() {
        if (failed) return;
        for (WorkState.Assignment<ActorRef<Worker.Command>> a : state.dispatch(System.nanoTime(), admission)) {
            Task t = a.task();
            a.lane().tell(new Worker.Assign(a.taskId(), job.staged().plan().tensors().get(t.tensor()), t.from(), t.to()));
        }
        for (ActorRef<Worker.Command> idle : state.dismissIdle()) idle.tell(Worker.NoMoreWork.INSTANCE);
    }
}
