package org.mergeengine;

import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

/**
 * An error the engine reports to the user. {@link Kind#USER} errors come from the config or the
 * input files (the CLI exits 2); {@link Kind#INTERNAL} ones are the engine's own fault (exit 1).
 */
public class MergeException extends RuntimeException {
    public enum Kind { USER, INTERNAL }

    private final Kind kind;

    public MergeException(Kind kind, String message) {
        super(message);
        this.kind = kind;
    }

    public MergeException(Kind kind, String message, Throwable cause) {
        super(message, cause);
        this.kind = kind;
    }

    public static MergeException user(String message) {
        return new MergeException(Kind.USER, message);
    }

    /** The failure inside the wrappers that futures put around it. */
    public static Throwable unwrap(Throwable t) {
        while ((t instanceof CompletionException || t instanceof ExecutionException)
                && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    public Kind kind() {
        return kind;
    }
}
