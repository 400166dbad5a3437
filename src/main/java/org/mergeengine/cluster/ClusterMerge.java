package org.mergeengine.cluster;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.mergeengine.MergeException;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.engine.Progress;
import org.mergeengine.engine.StagedOutput;
import org.mergeengine.plan.PlannedTensor;

/**
 * Coordinates one merge across the cluster. It owns the staged output: it hands out tasks to the
 * lanes that pull them, re-reads every part a lane reports finished and checks its CRC32 before
 * journaling it, puts the tasks of a lane whose node went away back at the front of the queue, and
 * finishes the output folder when every part is verified. A node that joins mid-merge is offered
 * the job as soon as the Receptionist lists its lanes.
 */
final class ClusterMerge extends AbstractBehavior<Protocol.ToCoordinator> {
    /** Splitting is fixed (not by the lanes of the moment) so that a resumed run finds the same parts. */
    static final int SPLIT_LANES = 4;
    /** A part that fails this often (on any nodes) fails the merge. */
    static final int MAX_ATTEMPTS = 3;

    private record Listed(Set<ActorRef<Protocol.ToWorker>> workers) implements Protocol.ToCoordinator {}

    private record Gone(ActorRef<Protocol.ToWorker> worker) implements Protocol.ToCoordinator {}

    private record Verified(int taskId, long crc, boolean ok, String lane) implements Protocol.ToCoordinator {}

    private record Closed(Progress progress, Throwable error) implements Protocol.ToCoordinator {}

    record Job(String jobId, Protocol.JobSpec spec, StagedOutput staged, MergeOptions opts, Executor io,
               Consumer<Progress> progress, CompletableFuture<Progress> result) {}

    private final Job job;
    private final List<StagedOutput.Task> tasks;
    private final Deque<Integer> queue = new ArrayDeque<>();
    private final Map<Integer, ActorRef<Protocol.ToWorker>> running = new HashMap<>();
    private final Set<ActorRef<Protocol.ToWorker>> offered = new HashSet<>();
    private final Set<ActorRef<Protocol.ToWorker>> ready = new HashSet<>();
    private final Deque<ActorRef<Protocol.ToWorker>> idle = new ArrayDeque<>();
    private final Map<String, String> declined = new LinkedHashMap<>();
    /** Lanes that declined, failed a task or left: never offered this merge again. */
    private final Set<ActorRef<Protocol.ToWorker>> declinedRef = new HashSet<>();
    private final int[] partsLeft;
    private final int[] attempts;
    private final Map<String, Integer> byLane = new TreeMap<>();
    private final long started = System.nanoTime();
    private long inputTotal;
    private long inputDone;
    private int tensorsDone;
    private int verifying;
    private final int resumed;
    private boolean ending;

    static Behavior<Protocol.ToCoordinator> create(Job job) {
        return Behaviors.setup(ctx -> new ClusterMerge(ctx, job));
    }

    private ClusterMerge(ActorContext<Protocol.ToCoordinator> ctx, Job job) {
        super(ctx);
        this.job = job;
        List<PlannedTensor> tensors = job.staged().plan().tensors();
        this.tasks = job.staged().allTasks(job.spec().chunkElements(), SPLIT_LANES);
        this.partsLeft = new int[tensors.size()];
        this.attempts = new int[tasks.size()];
        int already = 0;
        for (int i = 0; i < tasks.size(); i++) {
            StagedOutput.Task t = tasks.get(i);
            if (job.staged().isDone(t)) {
                already++;
                continue;
            }
            partsLeft[t.tensor()]++;
            queue.add(i);
        }
        for (int i = 0; i < tensors.size(); i++) {
            inputTotal += tensors.get(i).inputBytes();
            if (partsLeft[i] == 0) tensorsDone++;
        }
        this.resumed = already;
        ctx.getSystem().receptionist().tell(Receptionist.subscribe(Protocol.WORKERS,
                ctx.messageAdapter(Receptionist.Listing.class, l -> new Listed(l.getServiceInstances(Protocol.WORKERS)))));
        if (queue.isEmpty()) finish();
    }

    @Override
    public Receive<Protocol.ToCoordinator> createReceive() {
        return newReceiveBuilder()
                .onMessage(Listed.class, this::onListed)
                .onMessage(Protocol.Ready.class, r -> {
                    if (!mine(r.jobId()) || !offered.contains(r.worker())) return this;
                    ready.add(r.worker());
                    idle.add(r.worker());
                    dispatch();
                    return this;
                })
                .onMessage(Protocol.Declined.class, d -> {
                    if (!mine(d.jobId())) return this;
                    declined.put(d.lane(), d.reason());
                    getContext().getLog().warn("{} cannot work on this merge: {}", d.lane(), d.reason());
                    forget(d.worker());
                    checkStarved();
                    return this;
                })
                .onMessage(Protocol.Done.class, d -> {
                    if (!mine(d.jobId()) || running.get(d.taskId()) == null || !running.get(d.taskId()).equals(d.worker())) return this;
                    running.remove(d.taskId());
                    verifying++;
                    StagedOutput.Task t = tasks.get(d.taskId());
                    // The coordinator reads back what another node wrote: a node whose output path is not the shared one is caught here.
                    ActorRef<Protocol.ToCoordinator> self = getContext().getSelf();
                    CompletableFuture.supplyAsync(() -> job.staged().verify(t, d.crc()), job.io())
                            .whenComplete((ok, err) -> self.tell(new Verified(d.taskId(), d.crc(), ok != null && ok, d.lane())));
                    idle.add(d.worker());
                    dispatch();
                    return this;
                })
                .onMessage(Verified.class, this::onVerified)
                .onMessage(Protocol.Failed.class, f -> {
                    if (!mine(f.jobId()) || running.get(f.taskId()) == null || !running.get(f.taskId()).equals(f.worker())) return this;
                    running.remove(f.taskId());
                    if (++attempts[f.taskId()] >= MAX_ATTEMPTS) {
                        fail(MergeException.user("tensor " + name(f.taskId()) + " failed " + MAX_ATTEMPTS + " times; last on " + f.lane() + ": " + f.message()));
                        return this;
                    }
                    getContext().getLog().warn("{} failed on {}: {}; retrying elsewhere", name(f.taskId()), f.lane(), f.message());
                    queue.addFirst(f.taskId());
                    // A lane that failed a task may have a local problem (disk, cache): it takes no more work in this merge.
                    f.worker().tell(new Protocol.Ended(job.jobId()));
                    declined.put(f.lane(), f.message());
                    forget(f.worker());
                    dispatch();
                    checkStarved();
                    return this;
                })
                .onMessage(Gone.class, g -> {
                    boolean had = offered.contains(g.worker());
                    forget(g.worker());
                    if (had) getContext().getLog().info("a worker lane left the cluster; its unfinished tasks go back to the queue");
                    dispatch();
                    return this;
                })
                .onSignal(org.apache.pekko.actor.typed.PostStop.class, stop -> {
                    if (!job.result().isDone()) {
                        // The node is shutting down mid-merge: keep what is verified for a resubmission to resume.
                        if (!ending) job.staged().close();
                        job.result().completeExceptionally(MergeException.user("the coordinating node stopped before the merge was done; "
                                + "submit it again (on any node) to resume from the " + job.staged().tempDir().getFileName() + " folder"));
                    }
                    return this;
                })
                .onMessage(Closed.class, c -> {
                    if (c.error() != null) job.result().completeExceptionally(c.error());
                    else job.result().complete(c.progress());
                    return Behaviors.stopped();
                })
                .build();
    }

    private boolean mine(String jobId) {
        return !ending && job.jobId().equals(jobId);
    }

    private Behavior<Protocol.ToCoordinator> onListed(Listed l) {
        if (ending) return this;
        for (ActorRef<Protocol.ToWorker> w : l.workers()) {
            if (offered.contains(w) || declinedRef.contains(w)) continue;
            offered.add(w);
            getContext().watchWith(w, new Gone(w));
            w.tell(new Protocol.Offer(job.jobId(), job.spec(), getContext().getSelf()));
        }
        return this;
    }

    /** The lane takes no part any more: its running tasks go back to the front of the queue. */
    private void forget(ActorRef<Protocol.ToWorker> w) {
        if (offered.remove(w)) getContext().unwatch(w);
        declinedRef.add(w);
        ready.remove(w);
        idle.remove(w);
        List<Integer> back = new ArrayList<>();
        running.entrySet().removeIf(e -> {
            if (e.getValue().equals(w)) {
                back.add(e.getKey());
                return true;
            }
            return false;
        });
        back.sort(null);
        for (int i = back.size() - 1; i >= 0; i--) queue.addFirst(back.get(i));
    }

    private Behavior<Protocol.ToCoordinator> onVerified(Verified v) {
        verifying--;
        if (ending) return this;
        StagedOutput.Task t = tasks.get(v.taskId());
        if (!v.ok()) {
            if (++attempts[v.taskId()] >= MAX_ATTEMPTS) {
                fail(MergeException.user("the bytes " + v.lane() + " wrote for " + name(v.taskId()) + " do not read back the same here; "
                        + "every node must write to the same shared storage at the path " + job.staged().tempDir()));
                return this;
            }
            queue.addFirst(v.taskId());
            dispatch();
            return this;
        }
        job.staged().record(t, v.crc());
        byLane.merge(v.lane(), 1, Integer::sum);
        PlannedTensor pt = job.staged().plan().tensors().get(t.tensor());
        inputDone += pt.numel() == 0 ? pt.inputBytes() : (long) (pt.inputBytes() * ((t.to() - t.from()) / (double) pt.numel()));
        if (--partsLeft[t.tensor()] == 0) tensorsDone++;
        if (job.progress() != null) job.progress().accept(snapshot());
        if (queue.isEmpty() && running.isEmpty() && verifying == 0) finish();
        return this;
    }

    private void dispatch() {
        while (!ending && !idle.isEmpty() && !queue.isEmpty()) {
            ActorRef<Protocol.ToWorker> w = idle.poll();
            int next = queue.poll();
            running.put(next, w);
            StagedOutput.Task t = tasks.get(next);
            w.tell(new Protocol.Assign(job.jobId(), next, t.tensor(), t.from(), t.to()));
        }
    }

    /** Fails when nobody is left who could run the rest (a node that joins later is not waited for). */
    private void checkStarved() {
        if (ending || !ready.isEmpty() || !offered.isEmpty() || queue.isEmpty()) return;
        StringBuilder why = new StringBuilder();
        declined.forEach((lane, reason) -> why.append("\n  ").append(lane).append(": ").append(reason));
        fail(MergeException.user("no worker in the cluster can run this merge:" + why));
    }

    private void fail(Throwable error) {
        ending = true;
        endAll();
        Executor io = job.io();
        ActorRef<Protocol.ToCoordinator> self = getContext().getSelf();
        // Keep the temporary folder: verified parts are journaled and a resubmission resumes them.
        CompletableFuture.runAsync(job.staged()::close, io).whenComplete((x, e) -> self.tell(new Closed(null, error)));
    }

    private void finish() {
        ending = true;
        endAll();
        Progress p = snapshot();
        ActorRef<Protocol.ToCoordinator> self = getContext().getSelf();
        CompletableFuture.runAsync(() -> job.staged().finish(job.opts()), job.io())
                .whenComplete((x, e) -> self.tell(new Closed(p, e == null ? null : e instanceof java.util.concurrent.CompletionException && e.getCause() != null ? e.getCause() : e)));
    }

    private void endAll() {
        for (ActorRef<Protocol.ToWorker> w : offered) w.tell(new Protocol.Ended(job.jobId()));
    }

    private String name(int taskId) {
        StagedOutput.Task t = tasks.get(taskId);
        return job.staged().plan().tensors().get(t.tensor()).name() + " [" + t.from() + ", " + t.to() + ")";
    }

    private Progress snapshot() {
        return new Progress(tensorsDone, partsLeft.length, inputDone, inputTotal, System.nanoTime() - started, Map.copyOf(byLane), resumed);
    }
}
