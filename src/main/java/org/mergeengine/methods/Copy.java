package org.mergeengine.methods;

/** The kernel that returns one input unchanged (a method given a single input). */
final class Copy {
    private Copy() {}

    static TensorKernel of(int input) {
        return (c, out) -> System.arraycopy(c.in[input], c.offset, out, 0, c.length);
    }

    static KernelTraits traits(int input) {
        return KernelTraits.copyOf(input);
    }
}
