package org.mergeengine.methods;

/**
 * The math of one method for one output tensor. The engine feeds it the tensor in chunks, in
 * order: first {@link KernelTraits#reductionPasses()} passes over every chunk through
 * {@link #reduce} (for whole-tensor statistics such as norms or magnitude thresholds), then one
 * pass through {@link #compute} that produces the output. How the tensor is chunked (whole, row
 * aligned, any order for elementwise kernels) follows the method's {@link KernelTraits} for the
 * tensor, which the engine reads before it builds the kernel.
 *
 * <p>The chunk's arrays belong to the kernel until it has computed the chunk: it may rewrite them
 * in place (the task-vector kernels turn inputs into task vectors at their first pass, which a
 * chunk kept in memory across the passes then keeps). Callers pass fresh copies of data they
 * still need.
 */
public interface TensorKernel {
    default void reduce(int pass, Chunk chunk) {}

    /** Called after each reduction pass has seen every chunk. */
    default void endPass(int pass) {}

    /** Writes the merged values of {@code chunk}'s elements into {@code out[0..chunk.length)}. */
    void compute(Chunk chunk, float[] out);
}
