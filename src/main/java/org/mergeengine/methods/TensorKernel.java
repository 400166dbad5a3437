package org.mergeengine.methods;

/**
 * The math of one method for one output tensor. The engine feeds it the tensor in chunks, in
 * order: first {@link #reductionPasses()} passes over every chunk through {@link #reduce} (for
 * whole-tensor statistics such as norms or magnitude thresholds), then one pass through
 * {@link #compute} that produces the output. A kernel that needs the tensor at once says so with
 * {@link #wholeTensor()} and then gets a single chunk.
 *
 * <p>The chunk's arrays belong to the kernel until it has computed the chunk: it may rewrite them
 * in place (the task-vector kernels turn inputs into task vectors at their first pass, which a
 * chunk kept in memory across the passes then keeps). Callers pass fresh copies of data they
 * still need.
 */
public interface TensorKernel {
    /** True when the kernel must see the whole tensor in one chunk. */
    default boolean wholeTensor() {
        return false;
    }

    /** Chunks start and end on multiples of this many elements (e.g. a row length for row-wise math). */
    default long alignment() {
        return 1;
    }

    default int reductionPasses() {
        return 0;
    }

    default void reduce(int pass, Chunk chunk) {}

    /** Called after each reduction pass has seen every chunk. */
    default void endPass(int pass) {}

    /** Writes the merged values of {@code chunk}'s elements into {@code out[0..chunk.length)}. */
    void compute(Chunk chunk, float[] out);

    /** True when the output is exactly input 0 (lets the engine copy bytes without converting). */
    default boolean isIdentity() {
        return false;
    }

    /**
     * True when each output element is a function of the same element of the inputs alone (and of
     * the tensor's parameters): not of its index, its neighbours or other chunks. The engine may
     * then hand {@link #compute} a chunk's elements in another order, with a meaningless
     * {@code start}, and put the output back in order itself.
     */
    default boolean elementwise() {
        return false;
    }

    /** {@code kernel}, declared {@link #elementwise()}. */
    static TensorKernel ofElementwise(TensorKernel kernel) {
        return new TensorKernel() {
            @Override public void compute(Chunk chunk, float[] out) { kernel.compute(chunk, out); }
            @Override public boolean wholeTensor() { return kernel.wholeTensor(); }
            @Override public long alignment() { return kernel.alignment(); }
            @Override public int reductionPasses() { return kernel.reductionPasses(); }
            @Override public void reduce(int pass, Chunk chunk) { kernel.reduce(pass, chunk); }
            @Override public void endPass(int pass) { kernel.endPass(pass); }
            @Override public boolean isIdentity() { return kernel.isIdentity(); }
            @Override public boolean elementwise() { return true; }
        };
    }
}
