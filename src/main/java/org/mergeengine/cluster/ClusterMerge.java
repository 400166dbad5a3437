package org.mergeengine.cluster;

import com.typesafe.config.Config;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.mergeengine.MergeException;
import org.mergeengine.cluster.Protocol.Closed;
import org.mergeengine.cluster.Protocol.Gone;
import org.mergeengine.cluster.Protocol.Listed;
import org.mergeengine.cluster.Protocol.Tick;
import org.mergeengine.cluster.Protocol.ToCoordinator;
import org.mergeengine.cluster.Protocol.ToWorker;
import org.mergeengine.cluster.Protocol.Verified;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.engine.Progress;
import org.mergeengine.engine.Sizing;
import org.mergeengine.engine.StagedOutput;
import org.mergeengine.engine.Task;
import org.mergeengine.engine.WorkState;

/**
 * Coordinates one merge across the cluster by driving its {@link WorkState}: it hands out tasks to
 * the lanes that pull them, re-reads every part a lane reports finished and checks its CRC32
 * before journaling it, puts the tasks of a lane whose node went away (or that let a task's
 * deadline pass) back at the front of the queue, and finishes the output folder when every part
 * is verified. A node that joins mid-merge is offered the job as soon as the Receptionist lists
 * its lanes.
 */
final class ClusterMerge extends AbstractBehavior<ToCoordinator> {
    /** Splitting is fixed (not by the lanes of the moment) so that a resumed run finds the same parts. */
    static final int SPLIT_LANES = 4;
    /** A part that fails (or misses its deadline) this often, on any nodes, fails the merge. */
    static final int MAX_ATTEMPTS = 3;
    /** Settings of a task's deadline: a fixed allowance, plus an allowance per GiB of the task's input. */
    static final String DEADLINE_BASE = "merge-engine.cluster.task-deadline.base";
    static final String DEADLINE_PER_GIB = "merge-engine.cluster.task-deadline.per-gib";

    /** {@code nodeClosing}: this node is being closed (its own lanes stop first, and that is no reason to give up the merge). */
    record Job(String jobId, Protocol.JobSpec spec, StagedOutput staged, MergeOptions opts, Executor io,
               Consumer<Progress> progress, CompletableFuture<Progress> result, BooleanSupplier nodeClosing) {}

    private final Job job;
    private final WorkState<ActorRef<ToWorker>> state;
    private final WorkState.Deadline deadline;
    private final Set<ActorRef<ToWorker>> offered = new HashSet<>();
    private final Set<ActorRef<ToWorker>> ready = new HashSet<>();
    private final Map<ActorRef<ToWorker>, String> laneNames = new HashMap<>();
    private final Map<String, String> declined = new LinkedHashMap<>();
    /** Lanes that declined, failed a task, missed a deadline or left: never offered this merge again. */
    private final Set<ActorRef<ToWorker>> declinedRef = new HashSet<>();
    private boolean ending;

    static Behavior<ToCoordinator> create(Job job) {
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers -> new ClusterMerge(ctx, timers, job)));
    }

    /** The deadline policy of this node's coordinators (the settings, or two minutes plus one minute per GiB of input). */
    static WorkState.Deadline deadline(Config c) {
        Duration base = c.hasPath(DEADLINE_BASE) ? c.getDuration(DEADLINE_BASE) : Duration.ofMinutes(2);
        Duration perGiB = c.hasPath(DEADLINE_PER_GIB) ? c.getDuration(DEADLINE_PER_GIB) : Duration.ofMinutes(1);
        return new WorkState.Deadline(base, perGiB);
    }

    private ClusterMerge(ActorContext<ToCoordinator> ctx, TimerScheduler<ToCoordinator> timers, Job job) {
        super(ctx);
        this.job = job;
        this.deadline = deadline(ctx.getSystem().settings().config());
        // Cluster tasks are sized like local ones; memory is admitted on each node, by its TaskRunner.
        Sizing sizing = new Sizing(job.spec().chunkElements(), 0);
        this.state = job.staged().schedule(sizing, SPLIT_LANES, MAX_ATTEMPTS, deadline, System.nanoTime());
        Duration every = Duration.ofMillis(Math.max(100, Math.min(5000, deadline.base().toMillis() / 4)));
        timers.startTimerWithFixedDelay(Tick.INSTANCE, every);
        ctx.getSystem().receptionist().tell(Receptionist.subscribe(Protocol.WORKERS,
                ctx.messageAdapter(Receptionist.Listing.class, l -> new Listed(l.getServiceInstances(Protocol.WORKERS)))));
        if (state.queueEmpty()) finish();
    }

    @Override
    public Receive<ToCoordinator> createReceive() {
        return newReceiveBuilder()
                .onMessage(Listed.class, this::onListed)
                .onMessage(Protocol.Ready.class, r -> {
                    if (!mine(r.jobId()) || !offered.contains(r.worker())) return this;
                    ready.add(r.worker());
                    laneNames.put(r.worker(), r.lane());
                    state.ready(r.worker());
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
                    // A lane that lost the task (its deadline passed, or it was dropped) answers too late: ignored.
                    if (!mine(d.jobId()) || !state.finished(d.taskId(), d.worker())) return this;
                    Task t = state.entry(d.taskId()).task();
                    // The coordinator reads back what another node wrote: a node whose output path is not the shared one is caught here.
                    ActorRef<ToCoordinator> self = getContext().getSelf();
                    CompletableFuture.supplyAsync(() -> job.staged().verify(t, d.crc()), job.io())
                            .whenComplete((ok, err) -> self.tell(new Verified(d.taskId(), d.crc(), ok != null && ok, d.lane())));
                    dispatch();
                    return this;
                })
                .onMessage(Verified.class, this::onVerified)
                .onMessage(Protocol.Failed.class, f -> {
                    if (!mine(f.jobId())) return this;
                    WorkState.Outcome o = state.failed(f.taskId(), f.worker());
                    if (o == WorkState.Outcome.IGNORED) return this;
                    if (o == WorkState.Outcome.EXHAUSTED) {
                        fail(MergeException.user("tensor " + name(f.taskId()) + " failed " + MAX_ATTEMPTS + " times; last on " + f.lane() + ": " + f.message()));
                        return this;
                    }
                    getContext().getLog().warn("{} failed on {}: {}; retrying elsewhere", name(f.taskId()), f.lane(), f.message());
                    // A lane that failed a task may have a local problem (disk, cache): it takes no more work in this merge.
                    f.worker().tell(new Protocol.Ended(job.jobId()));
                    declined.put(f.lane(), f.message());
                    forget(f.worker());
                    dispatch();
                    checkStarved();
                    return this;
                })
                .onMessage(Tick.class, t -> onTick())
                .onMessage(Gone.class, g -> {
                    boolean had = offered.contains(g.worker());
                    forget(g.worker());
                    if (had) getContext().getLog().info("a worker lane left the cluster; its unfinished tasks go back to the queue");
                    dispatch();
                    return this;
                })
                .onSignal(PostStop.class, stop -> {
                    if (!job.result().isDone()) {
                        // The node is shutting down mid-merge: keep what is verified for a resubmission to resume.
                        if (!ending) job.staged().close();
                        job.result().completeExceptionally(coordinatorStopped());
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

    private Behavior<ToCoordinator> onListed(Listed l) {
        if (ending) return this;
        for (ActorRef<ToWorker> w : l.workers()) {
            if (offered.contains(w) || declinedRef.contains(w)) continue;
            offered.add(w);
            getContext().watchWith(w, new Gone(w));
            w.tell(new Protocol.Offer(job.jobId(), job.spec(), getContext().getSelf()));
        }
        return this;
    }

    /**
     * Tasks past their deadline go to other lanes; the lane that held each is dropped from this
     * merge (a hung or hostile member must not stall it), and whatever it answers later is ignored.
     */
    private Behavior<ToCoordinator> onTick() {
        if (ending) return this;
        for (WorkState.Expired<ActorRef<ToWorker>> e : state.expire(System.nanoTime())) {
            WorkState.Assignment<ActorRef<ToWorker>> a = e.assignment();
            String lane = laneNames.getOrDefault(a.lane(), String.valueOf(a.lane().path()));
            String why = "did not finish " + name(a.taskId()) + " within its deadline of " + deadline.of(a.entry().inputBytes()).toSeconds() + " s";
            if (e.outcome() == WorkState.Outcome.EXHAUSTED) {
                fail(MergeException.user("tensor " + name(a.taskId()) + " was not finished in time " + MAX_ATTEMPTS + " times; last, " + lane + " " + why));
                return this;
            }
            getContext().getLog().warn("{} {}; handing it to another lane", lane, why);
            a.lane().tell(new Protocol.Ended(job.jobId()));
            declined.put(lane, why);
            forget(a.lane());
        }
        dispatch();
        checkStarved();
        return this;
    }

    /** The lane takes no part any more: its running tasks go back to the front of the queue. */
    private void forget(ActorRef<ToWorker> w) {
        if (offered.remove(w)) getContext().unwatch(w);
        declinedRef.add(w);
        ready.remove(w);
        state.laneLost(w);
    }

    private Behavior<ToCoordinator> onVerified(Verified v) {
        if (ending) return this;
        if (!v.ok()) {
            if (state.rejected(v.taskId()) == WorkState.Outcome.EXHAUSTED) {
                fail(MergeException.user("the bytes " + v.lane() + " wrote for " + name(v.taskId()) + " do not read back the same here; "
                        + "every node must write to the same shared storage at the path " + job.staged().tempDir()));
                return this;
            }
            dispatch();
            return this;
        }
        job.staged().record(state.entry(v.taskId()).task(), v.crc());
        state.confirmed(v.taskId(), v.lane());
        if (job.progress() != null) job.progress().accept(state.progress(System.nanoTime()));
        if (state.idleAll()) finish();
        return this;
    }

    private void dispatch() {
        if (ending) return;
        for (WorkState.Assignment<ActorRef<ToWorker>> a : state.dispatch(System.nanoTime(), WorkState.Admission.ANY)) {
            Task t = a.task();
            a.lane().tell(new Protocol.Assign(job.jobId(), a.taskId(), t.tensor(), t.from(), t.to()));
        }
    }

    private MergeException coordinatorStopped() {
        return MergeException.user("the coordinating node stopped before the merge was done; "
                + "submit it again (on any node) to resume from the " + job.staged().tempDir().getFileName() + " folder");
    }

    /** Fails when nobody is left who could run the rest (a node that joins later is not waited for). */
    private void checkStarved() {
        if (ending || !ready.isEmpty() || !offered.isEmpty() || state.queueEmpty()) return;
        if (job.nodeClosing().getAsBoolean()) {
            // The lanes left because this node is closing: the merge can be resumed, not "run by no one".
            fail(coordinatorStopped());
            return;
        }
        StringBuilder why = new StringBuilder();
        declined.forEach((lane, reason) -> why.append("\n  ").append(lane).append(": ").append(reason));
        fail(MergeException.user("no worker in the cluster can run this merge:" + why));
    }

    private void fail(Throwable error) {
        ending = true;
        endAll();
        Executor io = job.io();
        ActorRef<ToCoordinator> self = getContext().getSelf();
        // Keep the temporary folder: verified parts are journaled and a resubmission resumes them.
        CompletableFuture.runAsync(job.staged()::close, io).whenComplete((x, e) -> self.tell(new Closed(null, error)));
    }

    private void finish() {
        ending = true;
        endAll();
        Progress p = state.progress(System.nanoTime());
        ActorRef<ToCoordinator> self = getContext().getSelf();
        CompletableFuture.runAsync(() -> job.staged().finish(job.opts()), job.io())
                .whenComplete((x, e) -> self.tell(new Closed(p, e == null ? null : MergeException.unwrap(e))));
    }

    private void endAll() {
        for (ActorRef<ToWorker> w : offered) w.tell(new Protocol.Ended(job.jobId()));
    }

    private String name(int taskId) {
        Task t = state.entry(taskId).task();
        return job.staged().plan().tensors().get(t.tensor()).name() + " [" + t.from() + ", " + t.to() + ")";
    }
}
