package org.mergeengine.methods;

import java.util.List;
import org.mergeengine.config.ConfigException;

/** A merge method, registered under its mergekit name. */
public interface MergeMethod {

    /** How a method uses {@code base_model}. */
    enum BaseUse {
        /** The method fails without a base. */
        REQUIRED,
        /** Used when given, not needed. */
        OPTIONAL,
        /** The base, when given, is merged as one more ordinary input. */
        ORDINARY,
        /** Never takes a base (passthrough). */
        NONE
    }

    /** The dtype of the result when the config sets neither dtype nor out_dtype. */
    enum ResultDType {
        /** torch's promotion over every input (bf16 + f16 gives f32). */
        PROMOTE,
        /** The base model's dtype. */
        BASE,
        /** The (single) source's dtype. */
        SOURCE
    }

    /** How inputs of different shapes are reconciled (only vocabulary matrices may differ). */
    enum ShapeRule {
        /** Every input is cut to the common top-left sub-matrix. */
        COMMON,
        /** Each input is cut to the base's shape; a non-embedding mismatch leaves that model out of the tensor. */
        TO_BASE
    }

    String name();

    default ShapeRule shapeRule() {
        return ShapeRule.COMMON;
    }

    List<ParamSpec> parameters();

    BaseUse baseUse();

    ResultDType resultDType();

    /**
     * Model-count rules, checked once per output slice before anything is read.
     * @param others number of inputs that are not the base
     * @param hasBase whether a base model takes part
     */
    default void checkInputs(int others, boolean hasBase, String yamlPath) throws ConfigException {}

    /** Parameter-range checks for one tensor (called while planning). */
    default void checkParameters(KernelContext ctx) throws ConfigException {}

    /**
     * What the kernel for one tensor needs (chunking, passes, elementwise, identity), without
     * building it: no allocation, no state. Planning and scheduling read this.
     */
    KernelTraits traits(KernelContext ctx);

    /** The kernel for one tensor; the engine builds it once per task, in the task that runs it. */
    TensorKernel kernel(KernelContext ctx);

    /** A one-line description for the README table and the model card. */
    default String description() {
        return name();
    }
}
