package org.mergeengine.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.Json;
import org.mergeengine.tools.SyntheticModel;

/** Numbers past the int range are reported as written, never wrapped around to a different number. */
class NumberRangeTest {
    @TempDir
    Path dir;

    @Test
    void aLayerCountPastTheIntRangeIsReportedAsWritten() throws Exception {
        Path m = dir.resolve("m");
        SyntheticModel.write(m, SyntheticModel.Spec.tiny(), DType.BF16, 1, 1, 0, 0);
        ObjectNode cfg = (ObjectNode) Json.read(m.resolve("config.json"));
        cfg.put("num_hidden_layers", 2147483653L);
        Json.write(m.resolve("config.json"), cfg);
        Path yaml = Files.writeString(dir.resolve("c.yaml"), "merge_method: linear\nmodels:\n  - model: " + m + "\n    parameters: {weight: 1}\n");
        TestSupport.Result r = TestSupport.cli(yaml.toString(), dir.resolve("out").toString(), "--quiet");
        assertEquals(2, r.exitCode(), r.stderr());
        assertTrue(r.stderr().contains("2147483653"), r.stderr());
        assertFalse(r.stderr().contains("-2147483643"), r.stderr());
    }

    @Test
    void aLayerRangePastTheIntRangeIsReportedAsWritten() {
        String msg = assertThrows(ConfigException.class, () -> ConfigParser.parse(
                "merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n        layer_range: [0, 4294967297]\n")).getMessage();
        assertTrue(msg.contains("4294967297") && msg.contains("layer_range"), msg);
    }

    @Test
    void aTokenIdPastTheIntRangeIsReportedAsWritten() {
        String msg = assertThrows(ConfigException.class, () -> ConfigParser.parse(
                "merge_method: linear\nmodels: [a]\ntokenizer:\n  source: union\n  tokens:\n    x:\n      source: {kind: model_token, model: a, token_id: 2147483653}\n"))
                .getMessage();
        assertTrue(msg.contains("2147483653") && msg.contains("token_id"), msg);
    }
}
