package org.mergeengine.methods;

/**
 * What the kernel of one method needs for one tensor, said before (and without) building it: the
 * engine plans, splits, sizes and admits tasks from this, and builds the kernel only in the task
 * that runs it. A method's {@link MergeMethod#traits} allocates nothing and keeps no state.
 *
 * @param wholeTensor the kernel must see the whole tensor in one chunk
 * @param alignment chunks start and end on multiples of this many elements (a row length for row-wise math)
 * @param reductionPasses passes over every chunk through {@link TensorKernel#reduce} before the output pass
 * @param elementwise each output element is a function of the same element of the inputs alone (and of
 *        the tensor's parameters): not of its index, its neighbours or other chunks. The engine may then
 *        hand {@link TensorKernel#compute} a chunk's elements in another order, with a meaningless
 *        {@code start}, and put the output back in order itself
 * @param identity the output is exactly input 0 (the engine may copy bytes without converting)
 */
public record KernelTraits(boolean wholeTensor, long alignment, int reductionPasses, boolean elementwise, boolean identity) {
    public KernelTraits {
        alignment = Math.max(1, alignment); // a row of no elements aligns like none
        if (reductionPasses < 0) throw new IllegalArgumentException("reductionPasses " + reductionPasses);
    }

    /** A streamed kernel: any chunking, no reduction pass, not elementwise. */
    public static KernelTraits streamed() {
        return new KernelTraits(false, 1, 0, false, false);
    }

    /** A streamed, elementwise kernel without reduction passes. */
    public static KernelTraits perElement() {
        return new KernelTraits(false, 1, 0, true, false);
    }

    /** The kernel that returns input 0 (or another input, when {@code input} is not 0) unchanged. */
    public static KernelTraits copyOf(int input) {
        return new KernelTraits(false, 1, 0, true, input == 0);
    }

    public KernelTraits withAlignment(long a) {
        return new KernelTraits(wholeTensor, a, reductionPasses, elementwise, identity);
    }

    public KernelTraits withPasses(int p) {
        return new KernelTraits(wholeTensor, alignment, p, elementwise, identity);
    }

    public KernelTraits asElementwise(boolean e) {
        return new KernelTraits(wholeTensor, alignment, reductionPasses, e, identity);
    }

    /** Whether a tensor this kernel merges can be split into parts that several lanes run (no statistics over the whole tensor). */
    public boolean splittable() {
        return !wholeTensor && reductionPasses == 0;
    }
}
