package org.mergeengine.plan;

import java.util.List;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.methods.KernelContext;
import org.mergeengine.methods.MergeMethod;

/**
 * One output tensor: where each input comes from, how it is read (cropped view, cast on load),
 * the method with every parameter resolved for this tensor, and the output dtype and shape.
 */
public record PlannedTensor(String name, long[] shape, DType outDType, List<Input> inputs, MergeMethod method,
                            KernelContext context) {

    /**
     * An input tensor. {@code view} is the shape the method sees: equal to the stored shape, or a
     * top-left sub-matrix of it (embedding rectification). {@code castTo} is the config's dtype
     * (values are rounded to it on load), or null. {@code rows}, when set, rebuilds a vocabulary
     * matrix for a merged tokenizer (then {@code source} is this model's own matrix).
     */
    public record Input(String model, ModelFolder.Located source, long[] view, DType castTo, PermutedRows rows) {
        public Input(String model, ModelFolder.Located source, long[] view, DType castTo) {
            this(model, source, view, castTo, null);
        }

        public boolean cropped() {
            if (rows != null) return false;
            long[] s = source.info().shape();
            return s.length == 2 && (s[0] != view[0] || s[1] != view[1]);
        }
    }

    public long numel() {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    public long outputBytes() {
        return numel() * outDType.size();
    }

    public long inputBytes() {
        long b = 0;
        for (Input i : inputs) b += i.source().info().byteSize();
        return b;
    }
}
