package org.mergeengine.methods;

/**
 * A parameter a method reads. Per-model parameters are looked up for each input model (source,
 * then slice, then top level); global ones only at slice and top level.
 */
public record ParamSpec(String name, boolean perModel, boolean required, double defaultValue) {
    public static ParamSpec global(String name, double def) {
        return new ParamSpec(name, false, false, def);
    }

    public static ParamSpec requiredGlobal(String name) {
        return new ParamSpec(name, false, true, Double.NaN);
    }

    public static ParamSpec perModel(String name, double def) {
        return new ParamSpec(name, true, false, def);
    }

    public static ParamSpec requiredPerModel(String name) {
        return new ParamSpec(name, true, true, Double.NaN);
    }
}
