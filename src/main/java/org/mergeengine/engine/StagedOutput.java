package org.mergeengine.engine;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Executor;
import org.mergeengine.MergeException;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.plan.MergePlan;
import org.mergeengine.plan.PlannedTensor;

/**
 * A merge's output while it is being written: the plan-hashed temporary folder with its shards
 * laid out and its journal of finished parts. Opening it again after a crash keeps every journaled
 * part whose bytes still check out. Whoever schedules the work (the local supervisor, or a
 * cluster coordinator) decides which parts to run; this class only knows what is done.
 */
public final class StagedOutput implements AutoCloseable {
    private final MergePlan plan;
    private final Path out;
    private final Path tmp;
    private final SafetensorsWriter writer;
    private final Journal journal;
    private final Set<String> alreadyDone;
    private OutputLock lock;

    private StagedOutput(MergePlan plan, Path out, Path tmp, SafetensorsWriter writer, Journal journal, Set<String> alreadyDone) {
        this.plan = plan;
        this.out = out;
        this.tmp = tmp;
        this.writer = writer;
        this.journal = journal;
        this.alreadyDone = alreadyDone;
    }

    /** The temporary folder a plan writes {@code out} through (the same name on every node and every run). */
    public static Path tempFolder(MergePlan plan, Path out) {
        try {
            return OutputFolder.tempFor(out, OutputFolder.planHash(plan));
        } catch (IOException e) {
            throw MergeException.user("cannot create the output folder next to " + out + ": " + e.getMessage());
        }
    }

    /**
     * Creates the temporary folder, or reopens the one an interrupted run of the same plan left,
     * holding the output's lock until the run ends (so no other run touches these folders).
     */
    public static StagedOutput open(MergePlan plan, Path out, Executor flusher) {
        Path o = OutputFolder.normalize(out);
        OutputLock lock = OutputLock.acquire(o);
        try {
            StagedOutput s = openLocked(plan, o, flusher);
            s.lock = lock;
            return s;
        } catch (RuntimeException | Error e) {
            lock.close();
            throw e;
        }
    }

    private static StagedOutput openLocked(MergePlan plan, Path out, Executor flusher) {
        OutputFolder.checkContents(out);
        Path tmp = tempFolder(plan, out);
        for (Path stale : OutputFolder.staleTemporaries(out, tmp)) OutputFolder.deleteTree(stale);
        SafetensorsWriter writer = null;
        Set<String> alreadyDone = new HashSet<>();
        if (Files.isDirectory(tmp)) {
            try {
                writer = SafetensorsWriter.resume(tmp, plan.layout());
                for (Map.Entry<String, Long> e : Journal.recorded(tmp).entrySet()) {
                    String key = e.getKey();
                    int at = key.lastIndexOf('@'), dash = key.lastIndexOf('-');
                    String name = key.substring(0, at);
                    PlannedTensor t = plan.tensors().stream().filter(x -> x.name().equals(name)).findFirst().orElse(null);
                    if (t == null) continue;
                    long es = t.outDType().size();
                    long from = Long.parseLong(key.substring(at + 1, dash)), to = Long.parseLong(key.substring(dash + 1));
                    if (Journal.intact(tmp, plan.layout(), name, from * es, to * es, e.getValue())) alreadyDone.add(key);
                }
            } catch (IOException | RuntimeException e) {
                if (writer != null) writer.close();
                writer = null;
                alreadyDone.clear();
                OutputFolder.deleteTree(tmp);
            }
        }
        Journal journal;
        try {
            if (writer == null) {
                Files.createDirectories(tmp);
                Files.deleteIfExists(tmp.resolve(Journal.FILE));
                writer = new SafetensorsWriter(tmp, plan.layout());
            }
            if (flusher != null) writer.flushInBackground(flusher);
            journal = Journal.open(tmp);
        } catch (IOException e) {
            if (writer != null) writer.close();
            OutputFolder.deleteTree(tmp);
            throw MergeException.user("cannot create output shards in " + tmp + ": " + e.getMessage());
        }
        return new StagedOutput(plan, out, tmp, writer, journal, alreadyDone);
    }

    public Path tempDir() { return tmp; }
    public Path out() { return out; }
    public MergePlan plan() { return plan; }
    SafetensorsWriter writer() { return writer; }
    Journal journal() { return journal; }

    /**
     * Every part of the plan, split for {@code lanes} lanes at chunk boundaries (a part split
     * this way has the bytes of an unsplit run, so any split resumes any other's journal entries
     * only when the boundaries agree).
     */
    public List<Task> allTasks(Sizing sizing, int lanes) {
        List<Task> all = new ArrayList<>();
        for (int i = 0; i < plan.tensors().size(); i++) {
            for (long[] p : sizing.parts(plan.tensors().get(i), lanes)) all.add(new Task(i, p[0], p[1]));
        }
        return all;
    }

    public boolean isDone(Task t) {
        return alreadyDone.contains(t.key(plan));
    }

    /**
     * The scheduling state of the parts still to write (split for {@code lanes} lanes), each sized
     * by {@code sizing} from its method's kernel traits.
     */
    public <L> WorkState<L> schedule(Sizing sizing, int lanes, int maxAttempts, WorkState.Deadline deadline, long now) {
        List<PlannedTensor> tensors = plan.tensors();
        List<WorkState.Entry> parts = new ArrayList<>();
        int[] partsLeft = new int[tensors.size()];
        long[] memory = new long[tensors.size()];
        int resumed = 0;
        long inputTotal = 0;
        for (PlannedTensor t : tensors) inputTotal += t.inputBytes();
        for (Task task : allTasks(sizing, lanes)) {
            if (isDone(task)) {
                resumed++;
                continue;
            }
            PlannedTensor t = tensors.get(task.tensor());
            if (partsLeft[task.tensor()]++ == 0) memory[task.tensor()] = sizing.memoryEstimate(t);
            long input = t.numel() == 0 ? t.inputBytes() : (long) (t.inputBytes() * ((task.to() - task.from()) / (double) t.numel()));
            parts.add(new WorkState.Entry(task, input, memory[task.tensor()]));
        }
        int tensorsDone = 0;
        for (int left : partsLeft) if (left == 0) tensorsDone++;
        return new WorkState<>(parts, tensors.size(), inputTotal, tensorsDone, resumed, maxAttempts, deadline, now);
    }

    /** Re-reads a part written elsewhere (another node) and checks it against the CRC32 its writer reported. */
    public boolean verify(Task t, long crc) {
        PlannedTensor pt = plan.tensors().get(t.tensor());
        long es = pt.outDType().size();
        return Journal.intact(tmp, plan.layout(), pt.name(), t.from() * es, t.to() * es, crc);
    }

    /** Journals a verified part, so that a rerun after a crash keeps it. */
    public void record(Task t, long crc) {
        alreadyDone.add(t.key(plan));
        journal.finished(plan.tensors().get(t.tensor()).name(), t.from(), t.to(), crc);
    }

    /** Completes the folder (shards synced, index, config, tokenizer, card, marker) and moves it into place. */
    public void finish(MergeOptions opts) {
        journal.close();
        try {
            writer.finish();
            OutputFolder.finish(plan, tmp, out, opts);
        } catch (IOException e) {
            OutputFolder.deleteTree(tmp);
            throw MergeException.user("finishing the output in " + out + " failed: " + e.getMessage());
        } finally {
            unlock();
        }
    }

    private void unlock() {
        if (lock != null) lock.close();
    }

    /** Gives up: the temporary folder is removed. */
    public void abort() {
        journal.close();
        writer.close();
        OutputFolder.deleteTree(tmp); // still under the lock: no other run may have started on it
        unlock();
    }

    /** Closes the files and keeps the temporary folder, so that a rerun resumes it. */
    @Override
    public void close() {
        journal.close();
        writer.close();
        unlock();
    }
}
