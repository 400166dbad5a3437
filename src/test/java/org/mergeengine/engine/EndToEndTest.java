package org.mergeengine.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.ModelEdit;
import org.mergeengine.TestSupport;
import org.mergeengine.TinyModels;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.tensor.Convert;

/** Whole merges through the CLI entry point on tiny generated models. */
class EndToEndTest {
    @TempDir
    static Path dir;

    @BeforeAll
    static void models() throws Exception {
        TinyModels.write(dir.resolve("bf16"), DType.BF16, 2);
        TinyModels.write(dir.resolve("f32"), DType.F32, 3);
    }

    static Path cfg(String yaml) throws Exception {
        return Files.writeString(dir.resolve("cfg-" + System.nanoTime() + ".yaml"), yaml);
    }

    static TestSupport.Result merge(Path cfg, Path out, String... extra) {
        String[] args = Stream.concat(Stream.of(cfg.toString(), out.toString()), Stream.of(extra)).toArray(String[]::new);
        return TestSupport.cli(args);
    }

    @Test
    void linearMergeIntoShardsMatchesTheDefinition() throws Exception {
        Path out = dir.resolve("linear");
        TestSupport.Result r = merge(cfg("merge_method: linear\nmodels:\n  - model: bf16/base\n    parameters: {weight: 0.7}\n"
                + "  - model: bf16/ft1\n    parameters: {weight: 0.3}\n"), out, "--out-shard-size", "20k");
        assertEquals(0, r.exitCode(), r.stderr());
        JsonNode index = Json.read(out.resolve("model.safetensors.index.json"));
        assertTrue(index.get("weight_map").size() > 30);
        assertTrue(Files.exists(out.resolve("model-00001-of-" + String.format("%05d", countShards(out)) + ".safetensors")));
        for (String f : new String[] {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "README.md",
                "mergekit_config.yml", OutputFolder.MARKER}) {
            assertTrue(Files.exists(out.resolve(f)), f);
        }
        assertEquals(Files.readString(dir.resolve("bf16/base/tokenizer.json")), Files.readString(out.resolve("tokenizer.json")));
        JsonNode config = Json.read(out.resolve("config.json"));
        assertEquals("bfloat16", config.get("torch_dtype").asText());
        assertEquals(4, config.get("num_hidden_layers").asInt());
        try (ModelFolder got = ModelFolder.open(out); ModelFolder a = ModelFolder.open(dir.resolve("bf16/base"));
             ModelFolder b = ModelFolder.open(dir.resolve("bf16/ft1"))) {
            assertEquals(a.tensors().keySet(), got.tensors().keySet());
            for (String name : a.tensors().keySet()) {
                assertEquals(DType.BF16, got.tensor(name).info().dtype());
                float[] x = TestSupport.floats(a, name), y = TestSupport.floats(b, name), o = TestSupport.floats(got, name);
                for (int i = 0; i < o.length; i++) {
                    float want = Convert.bf16ToFloat(Convert.floatToBf16(0.7f * x[i] + 0.3f * y[i]));
                    assertEquals(want, o[i], Math.ulp(want) * 2, name + "[" + i + "]");
                }
            }
        }
        assertFalse(r.stderr().contains("error"), r.stderr());
        assertTrue(r.stderr().contains("progress:"), "plain progress lines when stderr is not a terminal: " + r.stderr());
    }

    static long countShards(Path out) throws Exception {
        try (var s = Files.list(out)) {
            return s.filter(p -> p.getFileName().toString().matches("model-\\d{5}-of-\\d{5}\\.safetensors")).count();
        }
    }

    @Test
    void frankenmergeRenumbersLayersAndTakesEdgesFromFirstAndLastSlice() throws Exception {
        Path out = dir.resolve("franken");
        TestSupport.Result r = merge(cfg("merge_method: passthrough\nslices:\n  - sources: [{model: f32/base, layer_range: [0, 3]}]\n"
                + "  - sources: [{model: f32/ft1, layer_range: [1, 4]}]\n"), out);
        assertEquals(0, r.exitCode(), r.stderr());
        assertEquals(6, Json.read(out.resolve("config.json")).get("num_hidden_layers").asInt());
        try (ModelFolder got = ModelFolder.open(out); ModelFolder a = ModelFolder.open(dir.resolve("f32/base"));
             ModelFolder b = ModelFolder.open(dir.resolve("f32/ft1"))) {
            assertArrayEquals(TestSupport.floats(a, "model.embed_tokens.weight"), TestSupport.floats(got, "model.embed_tokens.weight"));
            assertArrayEquals(TestSupport.floats(b, "lm_head.weight"), TestSupport.floats(got, "lm_head.weight"));
            assertArrayEquals(TestSupport.floats(b, "model.norm.weight"), TestSupport.floats(got, "model.norm.weight"));
            assertArrayEquals(TestSupport.floats(a, "model.layers.2.mlp.up_proj.weight"), TestSupport.floats(got, "model.layers.2.mlp.up_proj.weight"));
            assertArrayEquals(TestSupport.floats(b, "model.layers.1.mlp.up_proj.weight"), TestSupport.floats(got, "model.layers.3.mlp.up_proj.weight"));
            assertArrayEquals(TestSupport.floats(b, "model.layers.3.self_attn.o_proj.weight"), TestSupport.floats(got, "model.layers.5.self_attn.o_proj.weight"));
            assertNull(got.tensor("model.layers.6.mlp.up_proj.weight"));
        }
    }

    @Test
    void gradientsUseLayerPositionAndEdgesUseTZero() throws Exception {
        Path out = dir.resolve("gradient");
        TestSupport.Result r = merge(cfg("merge_method: linear\nmodels:\n  - model: f32/base\n    parameters: {weight: [1, 0]}\n"
                + "  - model: f32/ft1\n    parameters: {weight: [0, 1]}\n"), out);
        assertEquals(0, r.exitCode(), r.stderr());
        try (ModelFolder got = ModelFolder.open(out); ModelFolder a = ModelFolder.open(dir.resolve("f32/base"));
             ModelFolder b = ModelFolder.open(dir.resolve("f32/ft1"))) {
            for (String edge : new String[] {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}) {
                assertArrayEquals(TestSupport.floats(a, edge), TestSupport.floats(got, edge), edge + " is evaluated at t = 0");
            }
            assertArrayEquals(TestSupport.floats(a, "model.layers.0.mlp.up_proj.weight"), TestSupport.floats(got, "model.layers.0.mlp.up_proj.weight"));
            assertArrayEquals(TestSupport.floats(b, "model.layers.3.mlp.up_proj.weight"), TestSupport.floats(got, "model.layers.3.mlp.up_proj.weight"));
            float[] x = TestSupport.floats(a, "model.layers.1.mlp.up_proj.weight"), y = TestSupport.floats(b, "model.layers.1.mlp.up_proj.weight");
            float[] o = TestSupport.floats(got, "model.layers.1.mlp.up_proj.weight");
            for (int i = 0; i < o.length; i++) assertEquals((2 * x[i] + y[i]) / 3, o[i], 1e-6, "layer 1 of 4 has t = 1/3");
        }
    }

    @Test
    void randomMethodsGiveTheSameBytesWithAnyWorkerCountAndChunking() throws Exception {
        Path c = cfg("merge_method: dare_ties\nbase_model: f32/base\nmodels:\n  - model: f32/ft1\n    parameters: {weight: 1, density: 0.5}\n"
                + "  - model: f32/ft2\n    parameters: {weight: 0.5, density: 0.3}\n");
        Path one = dir.resolve("dare1"), four = dir.resolve("dare4");
        assertEquals(0, merge(c, one, "--workers", "1", "--quiet").exitCode());
        assertEquals(0, merge(c, four, "--workers", "4", "--chunk-elements", "1024", "--quiet").exitCode());
        assertArrayEquals(Files.readAllBytes(one.resolve("model.safetensors")), Files.readAllBytes(four.resolve("model.safetensors")));
        Path seeded = dir.resolve("dare-seed");
        assertEquals(0, merge(c, seeded, "--random-seed", "7", "--quiet").exitCode());
        assertFalse(Arrays.equals(Files.readAllBytes(one.resolve("model.safetensors")), Files.readAllBytes(seeded.resolve("model.safetensors"))));
    }

    @Test
    void dryRunPrintsThePlanAndWritesNothing() throws Exception {
        Path out = dir.resolve("dry");
        TestSupport.Result r = merge(cfg("merge_method: ties\nbase_model: f32/base\nmodels:\n  - model: f32/ft1\n    parameters: {weight: 1, density: 0.5}\n"), out, "--dry-run");
        assertEquals(0, r.exitCode(), r.stderr());
        assertTrue(r.stdout().contains("output tensors:  39"), r.stdout());
        assertTrue(r.stdout().contains("peak memory est"), r.stdout());
        assertFalse(Files.exists(out));
    }

    @Test
    void missingTensorIsReportedBeforeAnyWork() throws Exception {
        ModelEdit.copy(dir.resolve("f32/ft2"), dir.resolve("f32/holey"), (n, v) -> n.equals("model.layers.2.mlp.down_proj.weight") ? null : v);
        Path out = dir.resolve("holey-out");
        TestSupport.Result r = merge(cfg("merge_method: linear\nmodels:\n  - model: f32/base\n    parameters: {weight: 1}\n"
                + "  - model: f32/holey\n    parameters: {weight: 1}\n"), out);
        assertEquals(2, r.exitCode());
        assertTrue(r.stderr().contains("model.layers.2.mlp.down_proj.weight") && r.stderr().contains("f32/holey"), r.stderr());
        assertFalse(Files.exists(out));
    }

    @Test
    void layerRangePastTheEnd() throws Exception {
        TestSupport.Result r = merge(cfg("merge_method: passthrough\nslices:\n  - sources: [{model: f32/base, layer_range: [0, 6]}]\n"), dir.resolve("past"));
        assertEquals(2, r.exitCode());
        assertTrue(r.stderr().contains("slices[0].sources[0].layer_range") && r.stderr().contains("4 layers"), r.stderr());
    }

    @Test
    void aFailureMidMergeLeavesNoOutputFolder() throws Exception {
        // three models whose unit vectors cancel: multislerp cannot interpolate, and fails while merging
        ModelEdit.copy(dir.resolve("f32/base"), dir.resolve("f32/neg"), (n, v) -> {
            for (int i = 0; i < v.length; i++) v[i] = -v[i];
            return v;
        });
        ModelEdit.copy(dir.resolve("f32/base"), dir.resolve("f32/zero"), (n, v) -> n.contains("layers.3") ? new float[v.length] : v);
        Path out = dir.resolve("antipodal");
        TestSupport.Result r = merge(cfg("merge_method: multislerp\nmodels:\n  - model: f32/base\n  - model: f32/neg\n  - model: f32/zero\n"
                + "parameters: {weight: 1}\n"), out, "--quiet");
        assertEquals(2, r.exitCode(), r.stderr());
        assertTrue(r.stderr().contains("multislerp") && r.stderr().contains("layers.3"), r.stderr());
        assertFalse(Files.exists(out));
        try (var s = Files.list(dir)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().startsWith(".antipodal")), "the temporary folder is removed");
        }
    }

    @Test
    void outputFolderRules() throws Exception {
        Path c = cfg("merge_method: passthrough\nmodels: [f32/base]\n");
        Path foreign = Files.createDirectories(dir.resolve("foreign"));
        Files.writeString(foreign.resolve("notes.txt"), "mine");
        TestSupport.Result r = merge(c, foreign);
        assertEquals(2, r.exitCode());
        assertTrue(r.stderr().contains("not an earlier merge-engine output"), r.stderr());
        assertEquals("mine", Files.readString(foreign.resolve("notes.txt")));
        Path again = dir.resolve("again");
        assertEquals(0, merge(c, again, "--quiet").exitCode());
        assertEquals(0, merge(c, again, "--quiet").exitCode(), "an earlier merge output is replaced");
        assertNotNull(Json.read(again.resolve(OutputFolder.MARKER)).get("config_sha256"));
    }

    @Test
    void lmHeadIsKeptWhenAnyInputHasOneAndTiedModelsReadTheirEmbeddings() throws Exception {
        ModelEdit.copy(dir.resolve("f32/ft3"), dir.resolve("f32/tied"), (n, v) -> n.equals("lm_head.weight") ? null : v);
        Path out = dir.resolve("tied-out");
        TestSupport.Result r = merge(cfg("merge_method: linear\nmodels:\n  - model: f32/base\n    parameters: {weight: 1}\n"
                + "  - model: f32/tied\n    parameters: {weight: 1}\n"), out, "--quiet");
        assertEquals(0, r.exitCode(), r.stderr());
        try (ModelFolder got = ModelFolder.open(out); ModelFolder a = ModelFolder.open(dir.resolve("f32/base"));
             ModelFolder t = ModelFolder.open(dir.resolve("f32/tied"))) {
            float[] head = TestSupport.floats(a, "lm_head.weight"), emb = TestSupport.floats(t, "model.embed_tokens.weight");
            float[] o = TestSupport.floats(got, "lm_head.weight");
            for (int i = 0; i < o.length; i++) assertEquals((head[i] + emb[i]) / 2, o[i], 1e-6);
        }
        Path both = dir.resolve("tied-both");
        assertEquals(0, merge(cfg("merge_method: linear\nmodels:\n  - model: f32/tied\n    parameters: {weight: 1}\n"
                + "  - model: f32/tied\n    parameters: {weight: 1}\n"), both, "--quiet").exitCode());
        try (ModelFolder got = ModelFolder.open(both)) {
            assertNull(got.tensor("lm_head.weight"), "no input has an lm_head, so neither does the output");
        }
    }

    @Test
    void mixedDtypesPromoteForLinearAndKeepTheBaseForTaskArithmetic() throws Exception {
        Path lin = dir.resolve("mixed-linear"), ta = dir.resolve("mixed-ta");
        assertEquals(0, merge(cfg("merge_method: linear\nmodels:\n  - model: bf16/base\n    parameters: {weight: 1}\n"
                + "  - model: f32/ft1\n    parameters: {weight: 1}\n"), lin, "--quiet").exitCode());
        assertEquals(0, merge(cfg("merge_method: task_arithmetic\nbase_model: bf16/base\nmodels:\n  - model: f32/ft1\n    parameters: {weight: 1}\n"),
                ta, "--quiet").exitCode());
        try (ModelFolder l = ModelFolder.open(lin); ModelFolder t = ModelFolder.open(ta)) {
            assertEquals(DType.F32, l.tensor("model.norm.weight").info().dtype());
            assertEquals(DType.BF16, t.tensor("model.norm.weight").info().dtype());
        }
        Path cast = dir.resolve("cast");
        assertEquals(0, merge(cfg("merge_method: linear\ndtype: float32\nout_dtype: float16\nmodels:\n  - model: f32/base\n    parameters: {weight: 1}\n"),
                cast, "--quiet").exitCode());
        try (ModelFolder c = ModelFolder.open(cast)) {
            assertEquals(DType.F16, c.tensor("model.norm.weight").info().dtype());
            assertEquals("float16", Json.read(cast.resolve("config.json")).get("torch_dtype").asText());
        }
    }
}
