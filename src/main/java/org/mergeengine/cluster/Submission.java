package org.mergeengine.cluster;

import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import org.mergeengine.engine.Progress;
import org.mergeengine.hub.Urls;

/** A merge submitted to a node: its state (queued, running, done or failed), the latest progress, and the result. */
public final class Submission {
    public enum State { QUEUED, RUNNING, DONE, FAILED }

    public record Change(State state, Instant at) {}

    private final String id;
    private final MergeNode.Request request;
    private final CompletableFuture<Progress> result = new CompletableFuture<>();
    private final List<Change> history = new CopyOnWriteArrayList<>();
    private final List<Consumer<Progress>> listeners = new CopyOnWriteArrayList<>();
    private volatile State state;
    private volatile Progress progress;
    private volatile String error;

    Submission(String id, MergeNode.Request request) {
        this.id = id;
        this.request = request;
        move(State.QUEUED);
    }

    public String id() { return id; }
    public Path out() { return request.out(); }
    public State state() { return state; }
    public Progress progress() { return progress; }
    /** The failure's message, or null. */
    public String error() { return error; }
    public List<Change> history() { return new ArrayList<>(history); }
    /** Completes with the final progress when the output folder is in place, or with the failure. */
    public CompletableFuture<Progress> result() { return result; }

    /** Called after every verified part (on an actor thread: keep it quick). */
    public Submission onProgress(Consumer<Progress> listener) {
        listeners.add(listener);
        return this;
    }

    MergeNode.Request request() { return request; }

    void move(State s) {
        state = s;
        history.add(new Change(s, Instant.now()));
    }

    void progress(Progress p) {
        progress = p;
        for (Consumer<Progress> l : listeners) l.accept(p);
    }

    /** The first outcome counts: a merge failed because its node was removed may still hear from its actors. */
    synchronized void complete(Progress p, Throwable err) {
        if (state == State.DONE || state == State.FAILED) return;
        if (err == null) {
            if (p != null) progress = p;
            move(State.DONE);
            result.complete(p);
        } else {
            error = Urls.redact(ClusterWorker.message(err));
            move(State.FAILED);
            result.completeExceptionally(err);
        }
    }
}
