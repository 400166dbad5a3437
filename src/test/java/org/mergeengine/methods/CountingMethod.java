package org.mergeengine.methods;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.mergeengine.config.ConfigException;

/**
 * A registered method that is {@code linear} in every respect, but counts the kernels built for
 * each tensor: for tests of how often the engine builds kernels.
 */
public final class CountingMethod implements MergeMethod {
    public static final String NAME = "linear_counting_kernels";
    private static final Map<String, AtomicInteger> BUILT = new ConcurrentHashMap<>();
    private final Linear linear = new Linear();

    private CountingMethod() {}

    /** Registers the method under {@link #NAME} with no counts, until the returned handle is closed. */
    public static AutoCloseable register() {
        MethodRegistry.register(new CountingMethod());
        BUILT.clear();
        return () -> MethodRegistry.unregister(NAME);
    }

    /** Kernels built for the tensor named {@code tensor} since {@link #register}. */
    public static int built(String tensor) {
        AtomicInteger n = BUILT.get(tensor);
        return n == null ? 0 : n.get();
    }

    @Override public String name() { return NAME; }
    @Override public List<ParamSpec> parameters() { return linear.parameters(); }
    @Override public BaseUse baseUse() { return linear.baseUse(); }
    @Override public ResultDType resultDType() { return linear.resultDType(); }
    @Override public void checkParameters(KernelContext ctx) throws ConfigException { linear.checkParameters(ctx); }
    @Override public KernelTraits traits(KernelContext ctx) { return linear.traits(ctx); }

    @Override
    public TensorKernel kernel(KernelContext ctx) {
        BUILT.computeIfAbsent(ctx.tensorName(), k -> new AtomicInteger()).incrementAndGet();
        return linear.kernel(ctx);
    }
}
