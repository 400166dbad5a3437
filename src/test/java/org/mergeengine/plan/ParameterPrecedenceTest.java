package org.mergeengine.plan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.formats.DType;
import org.mergeengine.tools.SyntheticModel;

/** Where a parameter's value comes from: the source's own parameters, then the slice's, then the top level. */
class ParameterPrecedenceTest {
    @TempDir
    static Path dir;

    @BeforeAll
    static void models() throws Exception {
        for (String m : new String[] {"a", "b", "base"}) SyntheticModel.write(dir.resolve(m), SyntheticModel.Spec.tiny(), DType.F32, 1, m.hashCode(), 0.1, 0);
    }

    static MergePlan plan(String yaml) {
        try (LocalModelResolver r = new LocalModelResolver(List.of(dir))) {
            return Planner.plan(ConfigParser.parse(yaml), r, PlanOptions.defaults());
        }
    }

    static PlannedTensor tensor(MergePlan p, String name) {
        return p.tensors().stream().filter(t -> t.name().equals(name)).findFirst().orElseThrow();
    }

    @Test
    void sourceBeatsSliceBeatsTopLevel() {
        MergePlan p = plan(String.join("\n",
                "merge_method: ties",
                "base_model: base",
                "parameters: {weight: 0.1, density: 0.9, normalize: 0, lambda: 0.5}",
                "slices:",
                "  - sources:",
                "      - {model: a, layer_range: [0, 4], parameters: {weight: 0.7}}",
                "      - {model: b, layer_range: [0, 4]}",
                "      - {model: base, layer_range: [0, 4]}",
                "    parameters: {density: [0.2, 0.8], lambda: 0.25}",
                ""));
        PlannedTensor t = tensor(p, "model.layers.3.mlp.up_proj.weight");
        var ctx = t.context();
        int a = ctx.inputModels().indexOf("a"), b = ctx.inputModels().indexOf("b");
        assertEquals(0.7, ctx.model("weight", a), 1e-12, "the source's own value");
        assertEquals(0.1, ctx.model("weight", b), 1e-12, "no source or slice value: the top level");
        assertEquals(0.8, ctx.model("density", a), 1e-12, "the slice's gradient at the last layer (t = 1)");
        assertEquals(0.25, ctx.global("lambda"), 1e-12, "a global parameter: the slice before the top level");
        assertEquals(0.0, ctx.global("normalize"), 1e-12);
        PlannedTensor first = tensor(p, "model.layers.0.mlp.up_proj.weight");
        assertEquals(0.2, first.context().model("density", a), 1e-12, "t = 0 at the first layer");
    }

    @Test
    void globalParametersUnderAModelAreIgnoredWithAWarning() {
        MergePlan p = plan("merge_method: ties\nbase_model: base\nmodels:\n  - model: a\n    parameters: {weight: 1, normalize: 0}\n");
        assertEquals(1.0, tensor(p, "model.norm.weight").context().global("normalize"), 1e-12, "ties' default, as in mergekit");
        assertTrue(p.warnings().stream().anyMatch(w -> w.contains("models[0].parameters.normalize") && w.contains("no effect")), p.warnings().toString());
    }
}
