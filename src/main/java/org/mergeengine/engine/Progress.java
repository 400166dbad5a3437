package org.mergeengine.engine;

/** A snapshot of a running merge, sent after every finished tensor ({@code resumedParts}: parts found already written by an interrupted run). */
public record Progress(int tensorsDone, int tensorsTotal, long inputBytesDone, long inputBytesTotal, long elapsedNanos,
                       java.util.Map<String, Integer> tasksByLane, int resumedParts) {
    /** The share of the input bytes after which the rate so far says something about the rest. */
    public static final double ETA_AFTER = 0.05;

    public double fraction() {
        return inputBytesTotal == 0 ? 1.0 : inputBytesDone / (double) inputBytesTotal;
    }

    /**
     * Seconds left at the rate so far, or -1 while too little is done for that rate to mean
     * anything (the first tensors pay for the start: class loading, the compiler, the page cache)
     * and once everything is done.
     */
    public double etaSeconds() {
        double f = fraction();
        if (f < ETA_AFTER || f >= 1.0 || tensorsDone >= tensorsTotal) return -1;
        double secs = elapsedNanos / 1e9;
        return secs / f - secs;
    }

    /**
     * As {@link #etaSeconds()}, at the rate since an earlier snapshot {@code from} of the same
     * merge: measured from the first finished tensor, the rate leaves out the start (the first
     * tensor also paid for loading classes and compiling), which on a small merge is most of it.
     */
    public double etaSeconds(Progress from) {
        if (from == null) return etaSeconds();
        if (fraction() < ETA_AFTER || tensorsDone >= tensorsTotal) return -1;
        long bytes = inputBytesDone - from.inputBytesDone, nanos = elapsedNanos - from.elapsedNanos;
        if (bytes <= 0 || nanos <= 0) return -1;
        return (inputBytesTotal - inputBytesDone) * (nanos / 1e9) / bytes;
    }
}
