package org.mergeengine.methods;

import java.util.List;
import java.util.Map;
import org.mergeengine.config.ConfigException;

/**
 * What a method knows about one output tensor: its name and shape, its inputs (in config order,
 * the base among them at {@link #baseIndex()} or -1), and every parameter resolved for this tensor.
 */
public final class KernelContext {
    private final String methodName;
    private final String tensorName;
    private final long[] shape;
    private final List<String> inputModels;
    private final int baseIndex;
    private final Map<String, Double> globals;
    private final Map<String, double[]> perModel;
    private final long seed;

    public KernelContext(String methodName, String tensorName, long[] shape, List<String> inputModels, int baseIndex,
                         Map<String, Double> globals, Map<String, double[]> perModel, long seed) {
        this.methodName = methodName;
        this.tensorName = tensorName;
        this.shape = shape;
        this.inputModels = inputModels;
        this.baseIndex = baseIndex;
        this.globals = globals;
        this.perModel = perModel;
        this.seed = seed;
    }

    public String method() { return methodName; }
    public String tensorName() { return tensorName; }
    public long[] shape() { return shape; }
    public int inputCount() { return inputModels.size(); }
    public List<String> inputModels() { return inputModels; }
    public int baseIndex() { return baseIndex; }
    public boolean hasBase() { return baseIndex >= 0; }
    public long seed() { return seed; }

    public long numel() {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    /** Length of the last dimension (a matrix's row length); the whole tensor for 0/1-D tensors. */
    public long rowLength() {
        return shape.length >= 2 ? shape[shape.length - 1] : Math.max(1, numel());
    }

    public double global(String name) {
        Double v = globals.get(name);
        if (v == null) throw new IllegalStateException("parameter " + name + " was not resolved for " + methodName);
        return v;
    }

    public boolean flag(String name) {
        return global(name) != 0.0;
    }

    /** A per-model parameter of input {@code i}; NaN when it is unset (only possible for the base). */
    public double model(String name, int i) {
        double[] v = perModel.get(name);
        if (v == null) throw new IllegalStateException("parameter " + name + " was not resolved for " + methodName);
        return v[i];
    }

    /** Indices of the inputs that are not the base, in config order. */
    public int[] others() {
        int[] o = new int[inputCount() - (hasBase() ? 1 : 0)];
        int k = 0;
        for (int i = 0; i < inputCount(); i++) if (i != baseIndex) o[k++] = i;
        return o;
    }

    /** A parameter problem found for this tensor: names the method, parameter, model and tensor. */
    public ConfigException invalid(String param, int input, String message) {
        String who = input >= 0 ? " of model " + inputModels.get(input) : "";
        return new ConfigException("parameters." + param, methodName + ": " + param + who + " at tensor " + tensorName + ": " + message);
    }
}
