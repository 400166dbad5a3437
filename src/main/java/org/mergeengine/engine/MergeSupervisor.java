package org.mergeengine.engine;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.mergeengine.plan.PlannedTensor;

/**
 * Owns the plan while it runs: hands tensors to workers as they ask, in plan order, while the
 * memory the running tasks hold stays under the byte budget (a task larger than the budget runs
 * alone). Completes {@code result} when every tensor is written, or with the first failure.
 */
final class MergeSupervisor extends AbstractBehavior<MergeSupervisor.Command> {
    interface Command {}

    record RequestWork(ActorRef<Worker.Command> worker) implements Command {}

    record TaskDone(int taskId, ActorRef<Worker.Command> worker, String lane) implements Command {}

    record TaskFailed(int taskId, Throwable error) implements Command {}

    /** Memory came back to the shared budget (another merge finished a task). */
    enum Wake implements Command { INSTANCE }

    /** Everything the supervisor needs for one merge. */
    record Job(StagedOutput staged,
               List<Device> devices, SharedBudget budget, int chunkElements, long retainBytes,
               Executor io, BufferPool pool, Consumer<Progress> progress, CompletableFuture<Progress> result) {}

    private final Job job;
    /** Tasks still to run: a tensor, or a part of one. */
    private final List<StagedOutput.Task> tasks = new java.util.ArrayList<>();
    private final int[] partsLeft;
    private final long[] estimate;
    private final Deque<Integer> queue = new ArrayDeque<>();
    private final Deque<ActorRef<Worker.Command>> idle = new ArrayDeque<>();
    private final long started = System.nanoTime();
    private final long inputTotal;
    private long inFlightBytes;
    private int running;
    private int done;
    private int tensorsLeft;
    private int resumed;
    private long inputDone;
    private final java.util.Map<String, Integer> byLane = new java.util.TreeMap<>();
    private boolean failed;
    private final Runnable wake;

    static Behavior<Command> create(Job job) {
        return Behaviors.setup(ctx -> new MergeSupervisor(ctx, job));
    }

    private MergeSupervisor(ActorContext<Command> ctx, Job job) {
        super(ctx);
        this.job = job;
        List<PlannedTensor> tensors = job.staged().plan().tensors();
        this.partsLeft = new int[tensors.size()];
        long total = 0;
        java.util.List<Long> est = new java.util.ArrayList<>();
        for (StagedOutput.Task t : job.staged().allTasks(job.chunkElements(), job.devices().size())) {
            if (job.staged().isDone(t)) {
                resumed++;
                continue;
            }
            queue.add(tasks.size());
            tasks.add(t);
            est.add(job.staged().memoryEstimate(t, job.chunkElements(), job.retainBytes()));
        }
        for (int i = 0; i < tensors.size(); i++) total += tensors.get(i).inputBytes();
        for (StagedOutput.Task t : tasks) partsLeft[t.tensor()]++;
        // A tensor whose every part an interrupted run already wrote is done.
        for (int left : partsLeft) if (left == 0) done++;
        this.estimate = est.stream().mapToLong(Long::longValue).toArray();
        this.inputTotal = total;
        ActorRef<Command> self = ctx.getSelf();
        this.wake = () -> self.tell(Wake.INSTANCE);
        job.budget().onRelease(wake);
        this.tensorsLeft = tensors.size() - done;
        if (queue.isEmpty()) {
            job.result().complete(snapshot());
        }
        int w = 0;
        for (Device d : job.devices()) {
            ctx.spawn(Worker.create(ctx.getSelf(), job.staged().writer(), job.staged().journal(), d, job.chunkElements(), job.retainBytes(), job.io(), job.pool()), "worker-" + (w++));
        }
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(RequestWork.class, r -> {
                    idle.add(r.worker());
                    dispatch();
                    if (tensorsLeft == 0 && running == 0) {
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
                    running--;
                    inFlightBytes -= estimate[d.taskId()];
                    job.budget().give(estimate[d.taskId()]);
                    StagedOutput.Task task = tasks.get(d.taskId());
                    PlannedTensor t = job.staged().plan().tensors().get(task.tensor());
                    byLane.merge(d.lane(), 1, Integer::sum);
                    inputDone += t.numel() == 0 ? t.inputBytes() : (long) (t.inputBytes() * ((task.to() - task.from()) / (double) t.numel()));
                    if (--partsLeft[task.tensor()] == 0) {
                        done++;
                        tensorsLeft--;
                    }
                    Progress p = snapshot();
                    if (job.progress() != null) job.progress().accept(p);
                    idle.add(d.worker());
                    if (tensorsLeft == 0) {
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
                    job.budget().give(inFlightBytes);
                    job.result().completeExceptionally(f.error());
                    return Behaviors.stopped();
                })
                .build();
    }

    private void dispatch() {
        while (!failed && !idle.isEmpty() && !queue.isEmpty()) {
            int next = queue.peek();
            if (!job.budget().tryTake(estimate[next], running == 0)) return;
            queue.poll();
            running++;
            inFlightBytes += estimate[next];
            StagedOutput.Task task = tasks.get(next);
            idle.poll().tell(new Worker.Assign(next, job.staged().plan().tensors().get(task.tensor()), task.from(), task.to()));
        }
        if (queue.isEmpty()) {
            while (!idle.isEmpty()) idle.poll().tell(Worker.NoMoreWork.INSTANCE);
        }
    }

    private Progress snapshot() {
        return new Progress(done, partsLeft.length, inputDone, inputTotal, System.nanoTime() - started, java.util.Map.copyOf(byLane), resumed);
    }
}
