package org.mergeengine.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.mergeengine.formats.DType;
import org.mergeengine.plan.Planner;

class ConfigParserTest {
    static String error(String yaml) {
        return assertThrows(ConfigException.class, () -> Planner.checkConfig(ConfigParser.parse(yaml))).getMessage();
    }

    @Test
    void parsesTheRepresentativeTiesConfig() {
        MergeConfig c = ConfigParser.parse(String.join("\n",
                "models:",
                "  - model: psmathur/orca_mini_v3_13b",
                "    parameters:",
                "      density: [1, 0.7, 0.1]",
                "      weight: 1.0",
                "  - model: WizardLM/WizardMath-13B-V1.0",
                "    parameters:",
                "      density: 0.33",
                "      weight:",
                "        - filter: mlp",
                "          value: 0.5",
                "        - value: 0",
                "merge_method: ties",
                "base_model: TheBloke/Llama-2-13B-fp16",
                "parameters:",
                "  normalize: true",
                "  int8_mask: true",
                "dtype: float16"));
        assertEquals("ties", c.mergeMethod());
        assertEquals(DType.F16, c.dtype());
        assertEquals(2, c.models().size());
        assertEquals(1.0, c.parameters().get("normalize").evaluate("x", 0));
        assertTrue(c.models().get(0).parameters().get("density") instanceof ParamValue.Gradient);
        ParamValue w = c.models().get(1).parameters().get("weight");
        assertEquals(0.5, w.evaluate("model.layers.3.mlp.up_proj.weight", 0.2));
        assertEquals(0.0, w.evaluate("model.layers.3.self_attn.q_proj.weight", 0.2));
    }

    @Test
    void gradientAndFilterValuesFromTheSpec() {
        ParamValue g = new ParamValue.Gradient(new double[] {0, 0.5, 0.3, 0.7, 1});
        double[][] expect = {{0, 0.0}, {1, 0.051282}, {10, 0.494872}, {20, 0.320513}, {38, 0.969231}, {39, 1.0}};
        for (double[] e : expect) assertEquals(e[1], g.evaluate("x", e[0] / 39.0), 1e-6, "layer " + e[0]);
        MergeConfig c = ConfigParser.parse("merge_method: slerp\nmodels: [a]\nparameters:\n  t: [{filter: self_attn, value: [0, 1]}, {value: 0.5}]\n");
        ParamValue t = c.parameters().get("t");
        assertEquals(0.25, t.evaluate("model.layers.1.self_attn.q_proj.weight", 0.25), 1e-12);
        assertEquals(0.5, t.evaluate("model.layers.1.mlp.up_proj.weight", 0.25), 1e-12);
        ParamValue noFallback = ConfigParser.parse("merge_method: slerp\nmodels: [a]\nparameters:\n  t: [{filter: self_attn, value: 1}]\n").parameters().get("t");
        assertNull(noFallback.evaluate("model.layers.1.mlp.up_proj.weight", 0.25), "no match falls through");
    }

    @Test
    void modelReferences() {
        ModelRef r = ModelRef.parse("hf_user/model@v0.0.1+hf_user/lora@main", "m");
        assertEquals("hf_user/model", r.path());
        assertEquals("v0.0.1", r.revision());
        assertEquals("hf_user/lora", r.loraPath());
        assertEquals("main", r.loraRevision());
        assertEquals("hf_user/model@v0.0.1+hf_user/lora@main", r.toString());
        for (String bad : new String[] {"@@@@@", "a+b+c", "a+b+c@d+e@f@g", "a@", "+b"}) {
            assertThrows(ConfigException.class, () -> ModelRef.parse(bad, "models[0].model"), bad);
        }
    }

    @Test
    void errorsNameTheirYamlPath() {
        String e = error("merge_method: dare-ties\nmodels: [a]\n");
        assertTrue(e.contains("merge_method") && e.contains("did you mean 'dare_ties'"), e);
        e = error("merge_method: linear\nmodles: [a]\n");
        assertTrue(e.contains("modles") && e.contains("did you mean 'models'"), e);
        e = error("merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: heavy}\n");
        assertTrue(e.startsWith("models[0].parameters.weight:") && e.contains("'heavy'"), e);
        e = error("merge_method: linear\nmodels: [a]\ndtype: bfloat\n");
        assertTrue(e.contains("dtype") && e.contains("bfloat16"), e);
        e = error("merge_method: passthrough\nslices:\n  - sources:\n    - {model: a, layer_range: [0, 4]}\n    - {model: b, layer_range: [0, 3]}\n");
        assertTrue(e.contains("slices[0].sources") && e.contains("same number of layers"), e);
        e = error("merge_method: passthrough\nslices:\n  - sources:\n    - {model: a, layer_range: [4, 2]}\n");
        assertTrue(e.contains("slices[0].sources[0].layer_range"), e);
        e = error("merge_method: linear\nmodels: [a]\nslices: [{sources: [{model: a}]}]\n");
        assertTrue(e.contains("not both"), e);
        e = error("merge_method: linear\nmodels: [a]\ntokenizer_source: base\ntokenizer: {source: union}\n");
        assertTrue(e.contains("tokenizer_source"), e);
        e = error("merge_method: linear\nmodels: [a]\nmodels: [b]\n");
        assertTrue(e.contains("YAML") && e.contains("models"), e);
        e = error("merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: [{filter: mlp}]}\n");
        assertTrue(e.contains("models[0].parameters.weight[0].value"), e);
        e = error("merge_method: linear\nmodels:\n  - model: a\n---\nmerge_method: linear\nmodels: [b]\n");
        assertTrue(e.contains("multi"), e);
    }

    @Test
    void booleansAreNumbers() {
        MergeConfig c = ConfigParser.parse("merge_method: ties\nmodels: [a]\nparameters: {normalize: false, flags: [true, false]}\n");
        assertEquals(0.0, c.parameters().get("normalize").evaluate("x", 0));
        assertEquals(0.5, c.parameters().get("flags").evaluate("x", 0.5));
    }
}
