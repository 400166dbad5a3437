package org.mergeengine.engine;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.TreeMap;

/**
 * The scheduling state of one merge, apart from the actors that drive it (the local
 * {@code MergeSupervisor}, the cluster's {@code ClusterMerge}), as Pekko's distributed-workers
 * sample keeps its {@code WorkState} apart from its {@code WorkManager}: the queue of tasks, the
 * lanes waiting for work, which lane runs which task and until when, parts left per tensor,
 * attempts, memory admission and progress.
 *
 * <p>It holds no clock and sends nothing: the driver passes the time in (nanoseconds from any fixed
 * origin) and acts on what each event returns. Lanes are whatever the driver addresses them by
 * (actor references), compared with {@code equals}. It is mutable, owned by one actor and touched
 * only from its messages: copying it per event would cost time linear in the tasks of the merge
 * for every task.
 *
 * <p>Life of a task: queued, handed to an idle lane ({@link #dispatch}), then either answered
 * ({@link #finished}) and {@link #confirmed} (or {@link #rejected} when its bytes do not check
 * out), or put back at the front of the queue when its lane fails it ({@link #failed}), leaves
 * ({@link #laneLost}) or lets its deadline pass ({@link #expire}). An answer from a lane that no
 * longer holds the task is ignored.
 *
 * @param <L> how the driver names a lane
 */
public final class WorkState<L> {
    /** A task with what scheduling needs to know of it: its share of the input bytes, and the memory it holds while it runs. */
    public record Entry(Task task, long inputBytes, long memoryBytes) {}

    /** A task handed to a lane. */
    public record Assignment<L>(int taskId, Entry entry, L lane) {
        public Task task() {
            return entry.task();
        }
    }

    /** What became of a task whose lane failed it, whose bytes were rejected, or whose deadline passed. */
    public enum Outcome {
        /** The lane does not hold the task (any more): nothing changed. */
        IGNORED,
        /** Back at the front of the queue. */
        REQUEUED,
        /** It has failed as often as a task may: the merge fails. */
        EXHAUSTED
    }

    /** A task whose lane let its deadline pass: requeued (or exhausted), and the lane dropped from this merge. */
    public record Expired<L>(Assignment<L> assignment, Outcome outcome) {}

    /** Whether a task of {@code bytes} may start now ({@code nothingRunning}: no task of this merge runs, so it must, to progress). */
    @FunctionalInterface
    public interface Admission {
        boolean admit(long bytes, boolean nothingRunning);

        /** Admits everything (memory is admitted elsewhere, e.g. on each cluster node). */
        Admission ANY = (bytes, nothingRunning) -> true;
    }

    /**
     * How long a lane may take for a task: {@code base} plus {@code perGiB} for each GiB of the
     * task's input, so that a large tensor gets the time a slow disk needs for it.
     */
    public record Deadline(Duration base, Duration perGiB) {
        /** No deadline (local lanes, in this process, cannot hang silently). */
        public static final Deadline NONE = new Deadline(null, null);

        long allowanceNanos(long inputBytes) {
            if (base == null) return Long.MAX_VALUE;
            double extra = perGiB.toNanos() * (inputBytes / (double) (1L << 30));
            return base.toNanos() + (long) Math.min(extra, Long.MAX_VALUE / 4.0);
        }

        /** The allowance of a task of {@code inputBytes}, for messages. */
        public Duration of(long inputBytes) {
            return Duration.ofNanos(allowanceNanos(inputBytes));
        }
    }

    private enum Status { QUEUED, RUNNING, CHECKING, DONE, FAILED }

    private final List<Entry> entries;
    private final int tensorsTotal;
    private final long inputTotal;
    private final int resumed;
    private final int maxAttempts;
    private final Deadline deadline;
    private final long started;

    private final Status[] status;
    private final int[] attempts;
    private final long[] due;
    private final Map<Integer, L> running = new HashMap<>();
    private final int[] partsLeft;
    private final Deque<Integer> queue = new ArrayDeque<>();
    private final Deque<L> idle = new ArrayDeque<>();
    private final Map<String, Integer> byLane = new TreeMap<>();
    private int tensorsDone;
    private long inputDone;
    private long inFlightBytes;
    private int checking;

    /**
     * @param entries the tasks still to run, in plan order
     * @param tensorsTotal tensors in the plan
     * @param inputTotal input bytes of the whole plan
     * @param tensorsDone tensors whose every part an interrupted run already wrote
     * @param resumed tasks an interrupted run already wrote
     * @param maxAttempts failures (or missed deadlines) after which a task fails the merge
     * @param now the time the merge starts
     */
    public WorkState(List<Entry> entries, int tensorsTotal, long inputTotal, int tensorsDone, int resumed,
                     int maxAttempts, Deadline deadline, long now) {
        this.entries = List.copyOf(entries);
        this.tensorsTotal = tensorsTotal;
        this.inputTotal = inputTotal;
        this.tensorsDone = tensorsDone;
        this.resumed = resumed;
        this.maxAttempts = maxAttempts;
        this.deadline = deadline;
        this.started = now;
        int n = this.entries.size();
        this.status = new Status[n];
        this.attempts = new int[n];
        this.due = new long[n];
        this.partsLeft = new int[tensorsTotal];
        for (int i = 0; i < n; i++) {
            status[i] = Status.QUEUED;
            queue.add(i);
            partsLeft[this.entries.get(i).task().tensor()]++;
        }
    }

    public Entry entry(int taskId) {
        return entries.get(taskId);
    }

    /** A lane asks for work: it waits, last in line, until {@link #dispatch} hands it a task. */
    public void ready(L lane) {
        if (!idle.contains(lane)) idle.add(lane);
    }

    /**
     * Hands queued tasks to idle lanes, in queue order, while {@code admission} lets the next one
     * start; a task keeps its place until it is admitted (later, smaller ones do not overtake it).
     */
    public List<Assignment<L>> dispatch(long now, Admission admission) {
        List<Assignment<L>> out = new ArrayList<>();
        while (!idle.isEmpty() && !queue.isEmpty()) {
            int next = queue.peek();
            Entry p = entries.get(next);
            if (!admission.admit(p.memoryBytes(), running.isEmpty())) break;
            queue.poll();
            L lane = idle.poll();
            status[next] = Status.RUNNING;
            running.put(next, lane);
            inFlightBytes += p.memoryBytes();
            long allowance = deadline.allowanceNanos(p.inputBytes());
            due[next] = allowance == Long.MAX_VALUE ? Long.MAX_VALUE : now + allowance;
            out.add(new Assignment<>(next, p, lane));
        }
        return out;
    }

    /** Whether {@code lane} runs {@code taskId} now (an answer from a lane that lost the task is stale). */
    public boolean holds(int taskId, L lane) {
        return lane.equals(running.get(taskId));
    }

    /**
     * The lane answered that the task is written: the lane waits for work again, and the task waits
     * for {@link #confirmed} or {@link #rejected}. False, changing nothing, when the lane does not
     * hold the task (it lost it to a deadline, or left).
     */
    public boolean finished(int taskId, L lane) {
        if (!holds(taskId, lane)) return false;
        stop(taskId);
        status[taskId] = Status.CHECKING;
        checking++;
        ready(lane);
        return true;
    }

    /** The task's bytes check out: it is done, and counted for {@code laneName}. */
    public void confirmed(int taskId, String laneName) {
        if (status[taskId] != Status.CHECKING) throw new IllegalStateException("task " + taskId + " is " + status[taskId]);
        status[taskId] = Status.DONE;
        checking--;
        Entry p = entries.get(taskId);
        byLane.merge(laneName, 1, Integer::sum);
        inputDone += p.inputBytes();
        if (--partsLeft[p.task().tensor()] == 0) tensorsDone++;
    }

    /** The task's bytes did not check out: it runs again, unless it has failed too often. */
    public Outcome rejected(int taskId) {
        if (status[taskId] != Status.CHECKING) return Outcome.IGNORED;
        checking--;
        return retry(taskId);
    }

    /**
     * The lane failed the task: the task goes back to the front of the queue (or fails the merge
     * after {@code maxAttempts}), and the lane takes no more work in this merge.
     */
    public Outcome failed(int taskId, L lane) {
        if (!holds(taskId, lane)) return Outcome.IGNORED;
        stop(taskId);
        Outcome o = retry(taskId);
        laneLost(lane);
        return o;
    }

    /** The lane is gone (left, declined or was dropped): its running tasks go back to the front of the queue, in plan order. */
    public void laneLost(L lane) {
        idle.remove(lane);
        List<Integer> back = new ArrayList<>();
        for (Map.Entry<Integer, L> e : running.entrySet()) if (e.getValue().equals(lane)) back.add(e.getKey());
        back.sort(null);
        for (int i = back.size() - 1; i >= 0; i--) {
            int t = back.get(i);
            stop(t);
            status[t] = Status.QUEUED;
            queue.addFirst(t);
        }
    }

    /**
     * Tasks whose deadline passed by {@code now}: each goes back to the front of the queue (one more
     * attempt), and its lane is dropped from this merge; whatever that lane answers later is ignored.
     */
    public List<Expired<L>> expire(long now) {
        List<Integer> late = new ArrayList<>();
        for (Map.Entry<Integer, L> e : running.entrySet()) if (due[e.getKey()] != Long.MAX_VALUE && due[e.getKey()] <= now) late.add(e.getKey());
        late.sort(null);
        List<Expired<L>> out = new ArrayList<>();
        for (int t : late) {
            L lane = running.get(t);
            if (lane == null) continue; // requeued with an earlier late task of the same lane
            out.add(new Expired<>(new Assignment<>(t, entries.get(t), lane), failed(t, lane)));
        }
        return out;
    }

    /** The earliest deadline of a running task, if any has one. */
    public OptionalLong nextDeadline() {
        return running.keySet().stream().mapToLong(t -> due[t]).filter(d -> d != Long.MAX_VALUE).min();
    }

    private void stop(int taskId) {
        running.remove(taskId);
        inFlightBytes -= entries.get(taskId).memoryBytes();
    }

    private Outcome retry(int taskId) {
        if (++attempts[taskId] >= maxAttempts) {
            status[taskId] = Status.FAILED; // never handed out again: the merge fails
            return Outcome.EXHAUSTED;
        }
        status[taskId] = Status.QUEUED;
        queue.addFirst(taskId);
        return Outcome.REQUEUED;
    }

    /** Takes the idle lanes out (to tell them that nothing is left) once the queue is empty; none before. */
    public List<L> dismissIdle() {
        if (!queue.isEmpty()) return List.of();
        List<L> out = new ArrayList<>(idle);
        idle.clear();
        return out;
    }

    public int attempts(int taskId) {
        return attempts[taskId];
    }

    public boolean queueEmpty() {
        return queue.isEmpty();
    }

    /** Tasks handed to lanes and not answered yet. */
    public int running() {
        return running.size();
    }

    /** Memory the running tasks were admitted with. */
    public long inFlightBytes() {
        return inFlightBytes;
    }

    /** Every tensor is done. */
    public boolean allDone() {
        return tensorsDone == tensorsTotal;
    }

    /** Nothing is queued, running or being checked. */
    public boolean idleAll() {
        return queue.isEmpty() && running.isEmpty() && checking == 0;
    }

    public Progress progress(long now) {
        return new Progress(tensorsDone, tensorsTotal, inputDone, inputTotal, now - started, Map.copyOf(byLane), resumed);
    }
}
