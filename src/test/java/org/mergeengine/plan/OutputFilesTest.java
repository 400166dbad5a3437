package org.mergeengine.plan;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.tensor.Convert;
import org.mergeengine.TestSupport;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.FormatException;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.SafetensorsWriter;

/** The files that travel with a model, and the layouts of mixture-of-experts layers. */
class OutputFilesTest {
    @TempDir
    Path dir;

    @Test
    void remoteCodeNamedByAutoMapTravelsFromTheBase() throws Exception {
        Path a = Families.write(dir.resolve("a"), "llama", 1), b = Families.write(dir.resolve("b"), "llama", 2);
        for (Path m : List.of(a, b)) {
            String cfg = Files.readString(m.resolve("config.json")).replace("\"architectures\"",
                    "\"auto_map\": {\n    \"AutoConfig\": \"configuration_tiny.TinyConfig\",\n    \"AutoModelForCausalLM\": \"modeling_tiny.TinyForCausalLM\",\n"
                            + "    \"AutoTokenizer\": [\"other/repo--tokenization_x.X\", null]\n  },\n  \"architectures\"");
            Files.writeString(m.resolve("config.json"), cfg);
            Files.writeString(m.resolve("configuration_tiny.py"), "# config of " + m.getFileName() + "\n");
            Files.writeString(m.resolve("modeling_tiny.py"), "# model of " + m.getFileName() + "\n");
        }
        Files.writeString(b.resolve("preprocessor_config.json"), "{\"from\": \"b\"}\n");
        MergePlan plan = Families.plan(dir, "merge_method: linear\nbase_model: b\nmodels:\n  - {model: a, parameters: {weight: 1}}\n  - {model: b, parameters: {weight: 1}}\n");
        Map<String, byte[]> files = plan.files().files("out", false, false);
        assertEquals("# model of b\n", new String(files.get("modeling_tiny.py"), StandardCharsets.UTF_8));
        assertEquals("# config of b\n", new String(files.get("configuration_tiny.py"), StandardCharsets.UTF_8));
        assertEquals("{\"from\": \"b\"}\n", new String(files.get("preprocessor_config.json"), StandardCharsets.UTF_8));
        assertFalse(files.containsKey("tokenization_x.py"), "code of another repository is fetched from there");

        Files.delete(b.resolve("modeling_tiny.py"));
        MergePlan missing = Families.plan(dir, "merge_method: linear\nbase_model: b\nmodels:\n"
                + "  - {model: a, parameters: {weight: 1}}\n  - {model: b, parameters: {weight: 1}}\n");
        assertTrue(missing.warnings().stream().anyMatch(w -> w.contains("modeling_tiny.py") && w.contains("trust_remote_code")), missing.warnings().toString());
        assertFalse(missing.files().tagalongFiles().containsKey("modeling_tiny.py"));
    }

    @Test
    void aTravellingFileThatLinksOutOfTheModelFolderIsRefused() throws Exception {
        Path a = Families.write(dir.resolve("a"), "llava", 1);
        Path secret = Files.writeString(dir.resolve("secret.txt"), "not part of any model");
        Files.delete(a.resolve("preprocessor_config.json"));
        Files.createSymbolicLink(a.resolve("preprocessor_config.json"), secret);
        FormatException e = assertThrows(FormatException.class, () -> Families.plan(dir, "merge_method: linear\nmodels:\n  - {model: a, parameters: {weight: 1}}\n"));
        assertTrue(e.getMessage().contains("preprocessor_config.json") && e.getMessage().contains("outside"), e.getMessage());
    }

    @Test
    void fusedExpertsKeepTheirLayoutAndPerExpertTensorsStayApart() throws Exception {
        for (String m : List.of("a", "b")) {
            Path d = Files.createDirectories(dir.resolve("fused-" + m));
            Files.writeString(d.resolve("config.json"), "{\n  \"architectures\": [\n    \"TinyMoeForCausalLM\"\n  ],\n  \"num_hidden_layers\": 2,\n  \"vocab_size\": 8\n}\n");
            List<SafetensorsWriter.TensorData> t = new java.util.ArrayList<>();
            t.add(Convert.tensorData("model.embed_tokens.weight", DType.F32, new long[] {8, 4}, new float[32]));
            for (int l = 0; l < 2; l++) {
                t.add(Convert.tensorData("model.layers." + l + ".mlp.experts.gate_up_proj", DType.F32, new long[] {3, 6, 4}, new float[72]));
                t.add(Convert.tensorData("model.layers." + l + ".mlp.experts.down_proj", DType.F32, new long[] {3, 4, 3}, new float[36]));
            }
            SafetensorsWriter.writeFile(d.resolve("model.safetensors"), t);
        }
        MergePlan plan = Families.plan(dir, "merge_method: slerp\nbase_model: fused-a\nmodels:\n  - model: fused-a\n  - model: fused-b\nparameters: {t: 0.5}\n");
        PlannedTensor gu = plan.tensors().stream().filter(x -> x.name().equals("model.layers.1.mlp.experts.gate_up_proj")).findFirst().orElseThrow();
        assertArrayEquals(new long[] {3, 6, 4}, gu.shape());
        assertEquals(5, plan.tensors().size());

        Families.write(dir.resolve("mix-a"), "mixtral", 1);
        Families.write(dir.resolve("mix-b"), "mixtral", 2);
        MergePlan per = Families.plan(dir, "merge_method: slerp\nbase_model: mix-a\nmodels:\n  - model: mix-a\n  - model: mix-b\nparameters: {t: 0.5}\n");
        assertTrue(per.tensors().stream().anyMatch(x -> x.name().equals("model.layers.2.block_sparse_moe.experts.3.w2.weight")
                && x.shape().length == 2), "each expert's tensors are merged apart");
    }

    @Test
    void aSecondNumberedGroupWithoutAStackNameIsMergedWholeBesideTheLayers() throws Exception {
        Path d = Files.createDirectories(dir.resolve("extra"));
        Files.writeString(d.resolve("config.json"), "{\n  \"num_hidden_layers\": 3,\n  \"vocab_size\": 8\n}\n");
        List<SafetensorsWriter.TensorData> t = new java.util.ArrayList<>();
        for (int l = 0; l < 3; l++) t.add(Convert.tensorData("model.layers." + l + ".w.weight", DType.F32, new long[] {2, 2}, new float[4]));
        for (int l = 0; l < 2; l++) t.add(Convert.tensorData("model.heads." + l + ".weight", DType.F32, new long[] {2}, new float[2]));
        SafetensorsWriter.writeFile(d.resolve("model.safetensors"), t);
        ModelLayout l = ModelLayout.of("extra", ModelFolder.open(d));
        assertEquals(List.of("default"), List.copyOf(l.modules().keySet()));
        assertEquals("model.layers.", l.layerPrefix());
        assertEquals(3, l.numLayers());
        assertTrue(l.main().pre().contains("model.heads.1.weight"));
    }

    @Test
    void aDryRunSaysEachTensorsModuleAndWhereACopiedModuleComesFrom() throws Exception {
        Families.write(dir.resolve("a"), "llava", 1);
        Families.write(dir.resolve("b"), "llava", 2);
        Path cfg = Files.writeString(dir.resolve("c.yaml"), "merge_method: passthrough\nbase_model: " + dir.resolve("b") + "\nslices:\n"
                + "  - sources: [{model: " + dir.resolve("a") + ", layer_range: [0, 2]}]\n");
        TestSupport.Result r = TestSupport.cli(cfg.toString(), dir.resolve("out").toString(), "--dry-run", "-v");
        assertEquals(0, r.exitCode(), r.stderr());
        assertTrue(r.stdout().contains("[vision_tower] vision_tower.encoder.layers.2.mlp.fc1.weight"), r.stdout());
        assertTrue(r.stdout().contains("[text_decoder] language_model.model.layers.1.mlp.up_proj.weight"), r.stdout());
        assertTrue(r.stdout().contains("[multi_modal_projector] multi_modal_projector.linear_1.weight"), r.stdout());
        assertTrue(r.stderr().contains("vision_tower is copied whole from " + dir.resolve("b")), r.stderr());
        assertFalse(Files.exists(dir.resolve("out")));
    }
}
