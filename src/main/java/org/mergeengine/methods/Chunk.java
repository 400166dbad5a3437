package org.mergeengine.methods;

/**
 * A run of elements {@code [start, start+length)} of one output tensor (flat, row-major), with the
 * matching float32 values of every input: {@code in[i][0..length)}.
 */
public final class Chunk {
    public final long start;
    public final int length;
    public final float[][] in;

    public Chunk(long start, int length, float[][] in) {
        this.start = start;
        this.length = length;
        this.in = in;
    }
}
