package org.mergeengine.methods;

/**
 * A run of elements {@code [start, start+length)} of one output tensor (flat, row-major), with the
 * matching float32 values of every input: {@code in[i][offset..offset+length)}. The engine always
 * passes offset 0; a kernel may cut a chunk into cache-sized views of the same arrays.
 */
public final class Chunk {
    public final long start;
    public final int length;
    public final float[][] in;
    public final int offset;
    /**
     * Set by a task-vector kernel once it has turned the non-base inputs of this chunk into task
     * vectors (input minus base) in place, so that its later passes over a chunk the engine keeps
     * in memory read one array instead of two.
     */
    private boolean taskVectors;

    boolean holdsTaskVectors() {
        return taskVectors;
    }

    void markTaskVectors() {
        taskVectors = true;
    }

    public Chunk(long start, int length, float[][] in) {
        this(start, length, in, 0);
    }

    public Chunk(long start, int length, float[][] in, int offset) {
        this.start = start;
        this.length = length;
        this.in = in;
        this.offset = offset;
    }

    /** Elements [from, from+len) of this chunk, over the same arrays. */
    public Chunk view(int from, int len) {
        Chunk v = new Chunk(start + from, len, in, offset + from);
        v.taskVectors = taskVectors;
        return v;
    }
}
