package org.mergeengine.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** mergekit's {@code modules:} syntax. */
class ModulesConfigTest {
    static String error(String yaml) {
        return assertThrows(ConfigException.class, () -> ConfigParser.parse(yaml)).getMessage();
    }

    @Test
    void eachModuleHasItsModelsOrSlicesAndParameters() {
        MergeConfig c = ConfigParser.parse("merge_method: linear\nbase_model: base\nmodules:\n"
                + "  text_decoder:\n    slices:\n      - sources:\n          - {model: a, layer_range: [0, 2]}\n    parameters: {weight: 0.5}\n"
                + "  vision_tower:\n    models:\n      - model: b\n        parameters: {weight: 1}\n");
        assertNull(c.models());
        assertNull(c.slices());
        assertEquals(List.of("text_decoder", "vision_tower"), List.copyOf(c.modules().keySet()));
        MergeConfig.ModuleSpec t = c.modules().get("text_decoder");
        assertEquals(0.5, t.parameters().get("weight").evaluate("x", 0));
        assertEquals("modules.text_decoder.slices[0].sources[0]", t.slices().get(0).sources().get(0).yamlPath());
        assertEquals("modules.vision_tower.models[0]", c.modules().get("vision_tower").models().get(0).yamlPath());
        assertEquals(List.of("a", "b", "base"), c.referencedModels().stream().map(ModelRef::toString).toList());
    }

    @Test
    void mistakesNameTheirModule() {
        assertTrue(error("merge_method: linear\nmodules:\n  text_decoder:\n    models: [a]\n    slices: [{sources: [{model: a}]}]\n")
                .startsWith("modules.text_decoder"));
        assertTrue(error("merge_method: linear\nmodules:\n  text_decoder: {parameters: {weight: 1}}\n").startsWith("modules.text_decoder"));
        assertTrue(error("merge_method: linear\nmodules:\n  text_decoder:\n    models: [a]\n    sources: []\n").contains("modules.text_decoder"));
        assertTrue(error("merge_method: linear\nmodels: [a]\nmodules:\n  text_decoder:\n    models: [a]\n").contains("modules: alone"));
        assertTrue(error("merge_method: linear\nmodules:\n  text_decoder:\n    slices:\n      - sources:\n          - {model: a, layer_range: [0, 2]}\n"
                + "          - {model: b, layer_range: [0, 3]}\n").contains("modules.text_decoder.slices[0].sources"));
    }
}
