package org.mergeengine.config;

import java.util.List;
import java.util.Map;
import org.mergeengine.formats.DType;

/**
 * One merge, as a mergekit YAML document describes it. Exactly one of {@code models},
 * {@code slices} and {@code modules} is non-null. Every element remembers its YAML path so later checks can name it.
 */
public record MergeConfig(
        String mergeMethod,
        ModelRef baseModel,
        List<ModelEntry> models,
        List<OutputSlice> slices,
        Params parameters,
        DType dtype,
        DType outDtype,
        TokenizerSpec tokenizer,
        String chatTemplate,
        String name,
        String sourceText,
        Map<String, ModuleSpec> modules) {

    /** A parameter block ({@code parameters:}) and where it sits in the YAML. */
    public record Params(Map<String, ParamValue> values, String yamlPath) {
        public static Params empty(String yamlPath) {
            return new Params(Map.of(), yamlPath);
        }

        public ParamValue get(String name) {
            return values.get(name);
        }
    }

    public record ModelEntry(ModelRef model, Params parameters, String yamlPath) {}

    /** {@code layerRange} is null when the source gives none (then: all layers). */
    public record InputSlice(ModelRef model, int[] layerRange, Params parameters, String yamlPath) {}

    public record OutputSlice(List<InputSlice> sources, Params parameters, ModelRef baseModel, String yamlPath) {}

    /** One module of {@code modules:}: exactly one of {@code models} and {@code slices} is non-null. */
    public record ModuleSpec(String name, List<ModelEntry> models, List<OutputSlice> slices, Params parameters, String yamlPath) {}

    /** A token's embedding source in {@code tokenizer.tokens}. kind: model, model_token or zero. */
    public record TokenSpec(String kind, ModelRef model, Integer tokenId, String token, boolean force, String yamlPath) {}

    /**
     * {@code source} is "union", "base", or a model reference (then {@code sourceModel} is set).
     * {@code legacy} marks the {@code tokenizer_source:} form.
     */
    public record TokenizerSpec(String source, ModelRef sourceModel, Map<String, TokenSpec> tokens,
                                Integer padToMultipleOf, boolean legacy, String yamlPath) {}

    /** All models the config names (inputs and base), in config order, without duplicates. */
    public List<ModelRef> referencedModels() {
        java.util.LinkedHashSet<ModelRef> refs = new java.util.LinkedHashSet<>();
        if (models != null) for (ModelEntry m : models) refs.add(m.model());
        if (slices != null) for (OutputSlice s : slices) {
            for (InputSlice i : s.sources()) refs.add(i.model());
            if (s.baseModel() != null) refs.add(s.baseModel());
        }
        if (modules != null) for (ModuleSpec m : modules.values()) {
            if (m.models() != null) for (ModelEntry e : m.models()) refs.add(e.model());
            if (m.slices() != null) for (OutputSlice s : m.slices()) {
                for (InputSlice i : s.sources()) refs.add(i.model());
                if (s.baseModel() != null) refs.add(s.baseModel());
            }
        }
        if (baseModel != null) refs.add(baseModel);
        return List.copyOf(refs);
    }
}
