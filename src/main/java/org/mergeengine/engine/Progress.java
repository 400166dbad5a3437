package org.mergeengine.engine;

/** A snapshot of a running merge, sent after every finished tensor. */
public record Progress(int tensorsDone, int tensorsTotal, long inputBytesDone, long inputBytesTotal, long elapsedNanos,
                       java.util.Map<String, Integer> tasksByLane) {
    public double fraction() {
        return inputBytesTotal == 0 ? 1.0 : inputBytesDone / (double) inputBytesTotal;
    }
}
