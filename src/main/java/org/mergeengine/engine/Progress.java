package org.mergeengine.engine;

/** A snapshot of a running merge, sent after every finished tensor ({@code resumedParts}: parts found already written by an interrupted run). */
public record Progress(int tensorsDone, int tensorsTotal, long inputBytesDone, long inputBytesTotal, long elapsedNanos,
                       java.util.Map<String, Integer> tasksByLane, int resumedParts) {
    public double fraction() {
        return inputBytesTotal == 0 ? 1.0 : inputBytesDone / (double) inputBytesTotal;
    }
}
