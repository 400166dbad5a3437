package org.mergeengine.moe;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.tensor.Convert;

/** `moe` end to end on tiny models: tensor mapping, noise, routers and config.json per output architecture. */
class MoeCommandTest {
    static final int L = MoeModels.LAYERS, H = MoeModels.HIDDEN, I = MoeModels.INTER;

    @TempDir
    Path dir;

    TestSupport.Result moe(String yaml, String... extra) throws Exception {
        Path cfg = Files.writeString(dir.resolve("moe-" + System.nanoTime() + ".yaml"), yaml);
        List<String> args = new ArrayList<>(List.of("moe", cfg.toString(), dir.resolve("out").toString(), "--quiet"));
        args.addAll(List.of(extra));
        return TestSupport.cli(args.toArray(new String[0]));
    }

    ModelFolder output() {
        return ModelFolder.open(dir.resolve("out"));
    }

    static float[] slice(float[] a, int from, int len) {
        float[] o = new float[len];
        System.arraycopy(a, from, o, 0, len);
        return o;
    }

    static float[] noised(float[] x, float[] noise, double scale, double residual, DType dt) {
        float[] o = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            float v = x[i];
            if (noise != null) v = Convert.roundTo(dt, v + Convert.roundTo(dt, Convert.roundTo(dt, noise[i]) * (float) scale));
            if (!Double.isNaN(residual)) v = Convert.roundTo(dt, v * (float) residual);
            o[i] = v;
        }
        return o;
    }

    @Test
    void mixtralFusesEachLayersExpertsAndDrawsGatesThenNoiseInMergekitsOrder() throws Exception {
        Map<String, float[]> base = MoeModels.write(dir.resolve("base"), "llama", DType.F32, 1);
        Map<String, float[]> e1 = MoeModels.write(dir.resolve("e1"), "llama", DType.F32, 2);
        Map<String, float[]> e2 = MoeModels.write(dir.resolve("e2"), "llama", DType.F32, 3);
        TestSupport.Result r = moe("base_model: " + dir.resolve("base") + "\ngate_mode: random\nexperts:\n"
                + "  - source_model: " + dir.resolve("e1") + "\n    noise_scale: 0.01\n"
                + "  - source_model: " + dir.resolve("e2") + "\n    noise_scale: 0.05\n    residual_scale: 0.5\n", "--random-seed", "7");
        assertEquals(0, r.exitCode(), r.stderr());

        // torch's stream after manual_seed(7): the [L, E, H] gate draw, then per layer, per expert: gate, down, up
        TorchRandom rng = new TorchRandom(7);
        float[] gates = rng.randn(L * 2 * H);
        List<Map<String, float[]>> ex = List.of(e1, e2);
        double[] scale = {0.01, 0.05}, res = {Double.NaN, 0.5};
        float[][][] expectNoise = new float[L][2 * 3][];
        for (int l = 0; l < L; l++) {
            for (int e = 0; e < 2; e++) {
                expectNoise[l][e * 3] = rng.randn(I * H);     // gate
                expectNoise[l][e * 3 + 1] = rng.randn(H * I); // down
                expectNoise[l][e * 3 + 2] = rng.randn(I * H); // up
            }
        }
        try (ModelFolder out = output()) {
            for (int l = 0; l < L; l++) {
                String p = "model.layers." + l + ".";
                assertArrayEquals(new long[] {2, 2 * I, H}, out.tensor(p + "mlp.experts.gate_up_proj").info().shape());
                assertArrayEquals(new long[] {2, H, I}, out.tensor(p + "mlp.experts.down_proj").info().shape());
                float[] gu = TestSupport.floats(out, p + "mlp.experts.gate_up_proj");
                float[] dn = TestSupport.floats(out, p + "mlp.experts.down_proj");
                for (int e = 0; e < 2; e++) {
                    Map<String, float[]> m = ex.get(e);
                    float[] gate = noised(m.get(p + "mlp.gate_proj.weight"), expectNoise[l][e * 3], scale[e], Double.NaN, DType.F32);
                    float[] up = noised(m.get(p + "mlp.up_proj.weight"), expectNoise[l][e * 3 + 2], scale[e], Double.NaN, DType.F32);
                    float[] down = noised(m.get(p + "mlp.down_proj.weight"), expectNoise[l][e * 3 + 1], scale[e], res[e], DType.F32);
                    assertArrayEquals(gate, slice(gu, e * 2 * I * H, I * H), "gate of expert " + e + " layer " + l);
                    assertArrayEquals(up, slice(gu, e * 2 * I * H + I * H, I * H), "up of expert " + e + " layer " + l);
                    assertArrayEquals(down, slice(dn, e * H * I, H * I), "down of expert " + e + " layer " + l);
                }
                assertArrayEquals(slice(gates, l * 2 * H, 2 * H), TestSupport.floats(out, p + "mlp.gate.weight"), "router of layer " + l);
                assertArrayEquals(base.get(p + "self_attn.q_proj.weight"), TestSupport.floats(out, p + "self_attn.q_proj.weight"));
                assertNull(out.tensor(p + "mlp.gate_proj.weight"));
            }
            assertArrayEquals(base.get("lm_head.weight"), TestSupport.floats(out, "lm_head.weight"));
            assertEquals(3 + 6 * L + 3 * L, out.tensors().size());
        }
        JsonNode c = Json.read(dir.resolve("out/config.json"));
        assertEquals("MixtralForCausalLM", c.get("architectures").get(0).asText());
        assertEquals("mixtral", c.get("model_type").asText());
        assertEquals(2, c.get("num_local_experts").asInt());
        assertEquals(2, c.get("num_experts_per_tok").asInt());
        assertEquals("float32", c.get("dtype").asText());
        assertTrue(c.get("sliding_window").isNull());
        assertEquals(I, c.get("intermediate_size").asInt());
        assertSorted(c);
        assertTrue(Files.exists(dir.resolve("out/mergekit_moe_config.yml")));
        assertTrue(Files.exists(dir.resolve("out/tokenizer.json")));
        try (var s = Files.list(dir)) {
            assertTrue(s.noneMatch(x -> x.getFileName().toString().contains(".moe-gates-")), "the router file is removed once the output is complete");
        }
    }

    static void assertSorted(JsonNode c) {
        List<String> keys = new ArrayList<>();
        for (Iterator<String> it = c.fieldNames(); it.hasNext(); ) keys.add(it.next());
        List<String> sorted = new ArrayList<>(keys);
        Collections.sort(sorted);
        assertEquals(sorted, keys);
    }

    @Test
    void mistralBaseGivesMixtralWithoutSlidingWindowAndBf16Noise() throws Exception {
        MoeModels.write(dir.resolve("base"), "mistral", DType.BF16, 1);
        Map<String, float[]> e1 = MoeModels.write(dir.resolve("e1"), "mistral", DType.BF16, 2);
        MoeModels.write(dir.resolve("e2"), "mistral", DType.BF16, 3);
        TestSupport.Result r = moe("base_model: " + dir.resolve("base") + "\ngate_mode: uniform_random\nexperts:\n"
                + "  - source_model: " + dir.resolve("e1") + "\n    positive_prompts: [a]\n    noise_scale: 0.1\n"
                + "  - source_model: " + dir.resolve("e2") + "\n    positive_prompts: [b]\n", "--random-seed", "3");
        assertEquals(0, r.exitCode(), r.stderr());
        JsonNode c = Json.read(dir.resolve("out/config.json"));
        assertTrue(c.get("sliding_window").isNull(), "mergekit-moe forces sliding_window: null");
        assertEquals("bfloat16", c.get("dtype").asText());
        TorchRandom rng = new TorchRandom(3);
        float[] u = rng.rand(L * 2 * H);
        float s = (float) Math.sqrt(1.0 / H);
        // bf16 sources draw block by block; the layer-0 gate of expert 0 comes first
        TorchRandom.NormalStream n = new TorchRandom.NormalStream(rng, I * H, true);
        float[] noise = new float[I * H];
        for (int k = 0; k < noise.length; k++) noise[k] = n.get(k);
        try (ModelFolder out = output()) {
            float[] router = TestSupport.floats(out, "model.layers.0.mlp.gate.weight");
            for (int k = 0; k < 2 * H; k++) assertEquals(Convert.roundTo(DType.BF16, u[k] * 2f * s - s), router[k], 0f, "uniform router " + k);
            float[] gu = TestSupport.floats(out, "model.layers.0.mlp.experts.gate_up_proj");
            assertArrayEquals(noised(e1.get("model.layers.0.mlp.gate_proj.weight"), noise, 0.1, Double.NaN, DType.BF16), slice(gu, 0, I * H));
        }
    }

    @Test
    void qwenMoeFromLlamaSynthesisesZeroBiasesAndRoutesTheSharedExpertByCheapEmbed() throws Exception {
        Map<String, float[]> base = MoeModels.write(dir.resolve("base"), "llama", DType.BF16, 1);
        Map<String, float[]> e1 = MoeModels.write(dir.resolve("e1"), "llama", DType.BF16, 2);
        MoeModels.write(dir.resolve("e2"), "llama", DType.BF16, 3);
        Map<String, float[]> sh = MoeModels.write(dir.resolve("sh"), "llama", DType.BF16, 4);
        TestSupport.Result r = moe("base_model: " + dir.resolve("base") + "\ngate_mode: cheap_embed\nexperts:\n"
                + "  - source_model: " + dir.resolve("e1") + "\n    positive_prompts: [\"a b\", \"c\"]\n    negative_prompts: [\"d\"]\n"
                + "  - source_model: " + dir.resolve("e2") + "\n    positive_prompts: [\"e\"]\n"
                + "shared_experts:\n  - source_model: " + dir.resolve("sh") + "\n    positive_prompts: [\"f g\"]\n    residual_scale: 0.1\n");
        assertEquals(0, r.exitCode(), r.stderr());
        JsonNode vocab = Json.read(dir.resolve("base/tokenizer.json")).get("model").get("vocab");
        float[] emb = base.get("model.embed_tokens.weight");
        double[] pos = unit(sumRows(emb, 1, vocab.get("a").asInt(), vocab.get("b").asInt(), 1, vocab.get("c").asInt()));
        double[] neg = unit(sumRows(emb, 1, vocab.get("d").asInt()));
        double[] row0 = new double[H];
        for (int h = 0; h < H; h++) row0[h] = pos[h] - neg[h];
        row0 = unit(row0);
        double[] row1 = unit(sumRows(emb, 1, vocab.get("e").asInt()));
        double[] shared = unit(sumRows(emb, 1, vocab.get("f").asInt(), vocab.get("g").asInt()));
        try (ModelFolder out = output()) {
            for (int l = 0; l < L; l++) {
                String p = "model.layers." + l + ".";
                float[] g = TestSupport.floats(out, p + "mlp.gate.weight");
                for (int h = 0; h < H; h++) {
                    assertEquals(row0[h], g[h], 4e-3, "router row 0");
                    assertEquals(row1[h], g[H + h], 4e-3, "router row 1");
                }
                float[] sg = TestSupport.floats(out, p + "mlp.shared_expert_gate.weight");
                assertArrayEquals(new long[] {1, H}, out.tensor(p + "mlp.shared_expert_gate.weight").info().shape());
                for (int h = 0; h < H; h++) assertEquals(shared[h], sg[h], 4e-3, "shared gate");
                assertArrayEquals(new float[H], TestSupport.floats(out, p + "self_attn.q_proj.bias"));
                assertEquals(MoeModels.KV * (H / MoeModels.HEADS), out.tensor(p + "self_attn.k_proj.bias").info().numel());
                assertArrayEquals(e1.get(p + "mlp.up_proj.weight"), TestSupport.floats(out, p + "mlp.experts.0.up_proj.weight"));
                assertArrayEquals(noised(sh.get(p + "mlp.down_proj.weight"), null, 0, 0.1, DType.BF16),
                        TestSupport.floats(out, p + "mlp.shared_expert.down_proj.weight"));
                assertArrayEquals(sh.get(p + "mlp.gate_proj.weight"), TestSupport.floats(out, p + "mlp.shared_expert.gate_proj.weight"));
            }
        }
        JsonNode c = Json.read(dir.resolve("out/config.json"));
        assertEquals("qwen2_moe", c.get("model_type").asText());
        assertEquals(2, c.get("num_experts").asInt());
        assertEquals(I, c.get("moe_intermediate_size").asInt());
        assertEquals(I, c.get("shared_expert_intermediate_size").asInt());
        assertSorted(c);
    }

    static double[] sumRows(float[] emb, int... ids) {
        double[] s = new double[H];
        for (int id : ids) for (int h = 0; h < H; h++) s[h] += emb[id * H + h];
        return s;
    }

    static double[] unit(double[] v) {
        double n = 0;
        for (double x : v) n += x * x;
        n = Math.sqrt(n);
        double[] o = new double[v.length];
        for (int i = 0; i < v.length; i++) o[i] = v[i] / n;
        return o;
    }

    @Test
    void deepseekTakesAPromptlessSharedExpertPerExpertInTemplateOrder() throws Exception {
        MoeModels.write(dir.resolve("base"), "llama", DType.F32, 1);
        Map<String, float[]> e1 = MoeModels.write(dir.resolve("e1"), "llama", DType.F32, 2);
        MoeModels.write(dir.resolve("e2"), "llama", DType.F32, 3);
        TestSupport.Result r = moe("base_model: " + dir.resolve("base") + "\ngate_mode: random\ndtype: bfloat16\nexperts:\n"
                + "  - source_model: " + dir.resolve("e1") + "\n  - source_model: " + dir.resolve("e2") + "\n"
                + "shared_experts:\n  - source_model: " + dir.resolve("base") + "\n", "--random-seed", "5");
        assertEquals(0, r.exitCode(), r.stderr());
        TorchRandom rng = new TorchRandom(5);
        float[] gates = rng.randn(L * 3 * H); // the shared row is drawn, then dropped
        try (ModelFolder out = output()) {
            List<String> names = new ArrayList<>(out.tensors().keySet());
            assertTrue(names.indexOf("model.layers.0.mlp.experts.1.up_proj.weight") < names.indexOf("model.layers.0.mlp.shared_experts.up_proj.weight"));
            float[] up = TestSupport.floats(out, "model.layers.1.mlp.experts.0.up_proj.weight");
            float[] want = e1.get("model.layers.1.mlp.up_proj.weight");
            for (int k = 0; k < want.length; k++) assertEquals(Convert.roundTo(DType.BF16, want[k]), up[k], 0f);
            assertEquals(DType.BF16, out.tensor("model.layers.1.mlp.experts.0.up_proj.weight").info().dtype());
            float[] router = TestSupport.floats(out, "model.layers.1.mlp.gate.weight");
            assertArrayEquals(new long[] {2, H}, out.tensor("model.layers.1.mlp.gate.weight").info().shape());
            for (int k = 0; k < 2 * H; k++) assertEquals(Convert.roundTo(DType.BF16, gates[3 * H + k]), router[k], 0f);
        }
        ObjectNode c = Json.readObject(dir.resolve("out/config.json"));
        assertEquals("deepseek", c.get("model_type").asText());
        assertEquals(1, c.get("n_shared_experts").asInt());
        assertEquals(2, c.get("n_routed_experts").asInt());
        assertEquals("bfloat16", c.get("torch_dtype").asText(), "torch_dtype carries the output dtype");
        List<String> keys = new ArrayList<>();
        c.fieldNames().forEachRemaining(keys::add);
        assertEquals("torch_dtype", keys.get(keys.size() - 1), "the base's key order, DeepSeek's keys appended");
        assertEquals("architectures", keys.get(0));
    }

    @Test
    void qwen3MoeFusesExpertsAndKeepsQkNorms() throws Exception {
        Map<String, float[]> base = MoeModels.write(dir.resolve("base"), "qwen3", DType.F32, 1);
        MoeModels.write(dir.resolve("e1"), "qwen3", DType.F32, 2);
        Map<String, float[]> e2 = MoeModels.write(dir.resolve("e2"), "qwen3", DType.F32, 3);
        TestSupport.Result r = moe("base_model: " + dir.resolve("base") + "\ngate_mode: random\nexperts_per_token: 1\nexperts:\n"
                + "  - source_model: " + dir.resolve("e1") + "\n  - source_model: " + dir.resolve("e2") + "\n");
        assertEquals(0, r.exitCode(), r.stderr());
        try (ModelFolder out = output()) {
            assertArrayEquals(base.get("model.layers.1.self_attn.q_norm.weight"), TestSupport.floats(out, "model.layers.1.self_attn.q_norm.weight"));
            float[] dn = TestSupport.floats(out, "model.layers.1.mlp.experts.down_proj");
            assertArrayEquals(e2.get("model.layers.1.mlp.down_proj.weight"), slice(dn, H * I, H * I));
        }
        JsonNode c = Json.read(dir.resolve("out/config.json"));
        assertEquals("qwen3_moe", c.get("model_type").asText());
        assertEquals(2, c.get("num_local_experts").asInt());
        assertEquals(1, c.get("num_experts_per_tok").asInt());
    }

    @Test
    void hiddenGatesRunTheBaseAndLayerZeroSeesTheLastTokensEmbedding() throws Exception {
        Map<String, float[]> base = MoeModels.write(dir.resolve("base"), "qwen3", DType.F32, 1);
        MoeModels.write(dir.resolve("e1"), "qwen3", DType.F32, 2);
        MoeModels.write(dir.resolve("e2"), "qwen3", DType.F32, 3);
        TestSupport.Result r = moe("base_model: " + dir.resolve("base") + "\nexperts:\n"
                + "  - source_model: " + dir.resolve("e1") + "\n    positive_prompts: [\"a b\", \"c\"]\n    negative_prompts: [\"d\"]\n"
                + "  - source_model: " + dir.resolve("e2") + "\n    positive_prompts: [\"e f g\"]\n");
        assertEquals(0, r.exitCode(), r.stderr());
        JsonNode vocab = Json.read(dir.resolve("base/tokenizer.json")).get("model").get("vocab");
        float[] emb = base.get("model.embed_tokens.weight");
        // the residual stream entering layer 0 is the embedding: mean of the prompts' last tokens, minus the negatives'
        double[] pos = sumRows(emb, vocab.get("b").asInt(), vocab.get("c").asInt()), neg = sumRows(emb, vocab.get("d").asInt());
        double[] row0 = new double[H];
        for (int h = 0; h < H; h++) row0[h] = pos[h] / 2 - neg[h];
        row0 = unit(row0);
        double[] row1 = unit(sumRows(emb, vocab.get("g").asInt()));
        try (ModelFolder out = output()) {
            assertEquals(DType.F32, out.tensor("model.layers.0.mlp.gate.weight").info().dtype());
            float[] g0 = TestSupport.floats(out, "model.layers.0.mlp.gate.weight");
            for (int h = 0; h < H; h++) {
                assertEquals(row0[h], g0[h], 1e-2, "expert 0, element " + h);
                assertEquals(row1[h], g0[H + h], 1e-2, "expert 1, element " + h);
            }
            float[] g1 = TestSupport.floats(out, "model.layers.1.mlp.gate.weight");
            double n = 0, diff = 0;
            for (int h = 0; h < H; h++) {
                n += g1[h] * (double) g1[h];
                diff += Math.abs(g1[h] - g0[h]);
            }
            assertEquals(1.0, n, 2e-2, "layer 1's rows are unit vectors");
            assertTrue(diff > 0.1, "layer 1 sees the first layer's output, not the embeddings");
        }
    }

    @Test
    void anExpertWithALoraAdapterGetsTheAdaptedMatrices() throws Exception {
        MoeModels.write(dir.resolve("base"), "llama", DType.F32, 1);
        Map<String, float[]> e1 = MoeModels.write(dir.resolve("e1"), "llama", DType.F32, 2);
        MoeModels.write(dir.resolve("e2"), "llama", DType.F32, 3);
        Path a = Files.createDirectories(dir.resolve("adapter"));
        ObjectNode ac = Json.MAPPER.createObjectNode();
        ac.put("peft_type", "LORA");
        ac.put("r", 2);
        ac.put("lora_alpha", 4);
        ac.putArray("target_modules").add("up_proj");
        Json.write(a.resolve("adapter_config.json"), ac);
        SplittableRandom rnd = new SplittableRandom(9);
        List<SafetensorsWriter.TensorData> t = new ArrayList<>();
        float[][] la = new float[L][2 * H], lb = new float[L][I * 2];
        for (int l = 0; l < L; l++) {
            for (int k = 0; k < la[l].length; k++) la[l][k] = (float) rnd.nextGaussian();
            for (int k = 0; k < lb[l].length; k++) lb[l][k] = (float) rnd.nextGaussian();
            String m = "base_model.model.model.layers." + l + ".mlp.up_proj";
            t.add(Convert.tensorData(m + ".lora_A.weight", DType.F32, new long[] {2, H}, la[l]));
            t.add(Convert.tensorData(m + ".lora_B.weight", DType.F32, new long[] {I, 2}, lb[l]));
        }
        SafetensorsWriter.writeFile(a.resolve("adapter_model.safetensors"), t);
        TestSupport.Result r = moe("base_model: " + dir.resolve("base") + "\ngate_mode: random\nexperts:\n"
                + "  - source_model: " + dir.resolve("e1") + "+" + a + "\n  - source_model: " + dir.resolve("e2") + "\n");
        assertEquals(0, r.exitCode(), r.stderr());
        try (ModelFolder out = output()) {
            for (int l = 0; l < L; l++) {
                float[] gu = TestSupport.floats(out, "model.layers." + l + ".mlp.experts.gate_up_proj");
                float[] up = e1.get("model.layers." + l + ".mlp.up_proj.weight");
                for (int i = 0; i < I; i++) {
                    for (int j = 0; j < H; j++) {
                        double d = 0;
                        for (int k = 0; k < 2; k++) d += (double) lb[l][i * 2 + k] * la[l][k * H + j];
                        assertEquals(up[i * H + j] + 2 * d, gu[I * H + i * H + j], 1e-4, "up_proj + (alpha/r)·B·A at " + i + "," + j);
                    }
                }
                assertArrayEquals(e1.get("model.layers." + l + ".mlp.gate_proj.weight"), slice(gu, 0, I * H), "gate_proj is not adapted");
            }
        }
    }

    @Test
    void mistakesExitWithTwoAndTheYamlPathBeforeAnythingIsWritten() throws Exception {
        MoeModels.write(dir.resolve("base"), "llama", DType.F32, 1);
        MoeModels.write(dir.resolve("q"), "qwen2", DType.F32, 2);
        String b = "base_model: " + dir.resolve("base") + "\n";
        String two = "experts:\n  - source_model: " + dir.resolve("base") + "\n    positive_prompts: [a]\n  - source_model: " + dir.resolve("base") + "\n    positive_prompts: [b]\n";
        String[][] cases = {
                {b + "experts_per_token: 3\n" + two, "experts: Must include at least as many experts as experts_per_token"},
                {b + "gate_mode: hiden\n" + two, "gate_mode: unknown gate mode 'hiden' (did you mean 'hidden'?)"},
                {b + "experts:\n  - source_model: " + dir.resolve("base") + "\n    positive_prompts: [a]\n  - source_model: " + dir.resolve("q") + "\n",
                        "experts[1].positive_prompts: Expert 1 has no positive prompts"},
                {b + "experts:\n  - source_model: " + dir.resolve("base") + "\n    positive_prompts: [a]\n  - source_model: " + dir.resolve("q") + "\n    positive_prompts: [a]\n",
                        "experts: Your positive and negative prompts are identical"},
                {b + two, "--i-understand-this-is-not-useful-without-training"},
                {b + "dtype: float13\n" + two, "dtype: unknown dtype 'float13'"},
                {b + "architecture: qwen2\n" + two.replace("source_model: " + dir.resolve("base") + "\n    positive_prompts: [b]", "source_model: " + dir.resolve("q") + "\n    positive_prompts: [b]"),
                        "architecture: No output architecture found that matches the given architecture: qwen2"},
                {b + two.replace("source_model: " + dir.resolve("base") + "\n    positive_prompts: [b]", "source_model: " + dir.resolve("q") + "\n    positive_prompts: [b]"),
                        "Mixtral: all models must have the same architecture, found model types [llama, qwen2]"},
                {b + "experts:\n  - source_model: " + dir.resolve("nowhere") + "\n    positive_prompts: [a]\n  - source_model: " + dir.resolve("base") + "\n    positive_prompts: [b]\n",
                        "experts[0].source_model"},
        };
        for (String[] c : cases) {
            TestSupport.Result r = moe(c[0]);
            assertEquals(2, r.exitCode(), c[0] + "\n" + r.stderr());
            assertTrue(r.stderr().contains(c[1]), "want '" + c[1] + "' in: " + r.stderr());
            assertFalse(r.stderr().contains("Exception"), r.stderr());
            assertFalse(Files.exists(dir.resolve("out")));
        }
    }

    @Test
    void aMissingExpertTensorIsReportedBeforeAnyWeightIsWritten() throws Exception {
        MoeModels.write(dir.resolve("base"), "llama", DType.F32, 1);
        MoeModels.write(dir.resolve("e1"), "llama", DType.F32, 2);
        Path cut = dir.resolve("e2");
        MoeModels.write(cut, "llama", DType.F32, 3);
        ModelFolder m = ModelFolder.open(cut);
        List<SafetensorsWriter.TensorData> kept = new ArrayList<>();
        for (String n : m.tensors().keySet()) {
            if (n.equals("model.layers.1.mlp.up_proj.weight")) continue;
            kept.add(Convert.tensorData(n, DType.F32, m.tensor(n).info().shape(), TestSupport.floats(m, n)));
        }
        m.close();
        SafetensorsWriter.writeFile(cut.resolve("model.safetensors"), kept);
        TestSupport.Result r = moe("base_model: " + dir.resolve("base") + "\ngate_mode: random\nexperts:\n  - source_model: " + dir.resolve("e1")
                + "\n  - source_model: " + cut + "\n");
        assertEquals(2, r.exitCode(), r.stderr());
        assertTrue(r.stderr().contains("experts[1].source_model") && r.stderr().contains("model.layers.1.mlp.up_proj.weight"), r.stderr());
        try (var s = Files.list(dir)) {
            assertTrue(s.noneMatch(x -> x.getFileName().toString().startsWith(".out") || x.getFileName().toString().equals("out")), "nothing written");
        }
    }

    @Test
    void dryRunPrintsThePlanAndWritesNothing() throws Exception {
        MoeModels.write(dir.resolve("base"), "llama", DType.F32, 1);
        Path cfg = Files.writeString(dir.resolve("dry.yaml"), "base_model: " + dir.resolve("base") + "\ngate_mode: random\nexperts:\n  - source_model: "
                + dir.resolve("base") + "\n  - source_model: " + dir.resolve("base") + "\n");
        TestSupport.Result r = TestSupport.cli("moe", cfg.toString(), dir.resolve("out").toString(), "--dry-run", "-v", "--load-in-4bit");
        assertEquals(0, r.exitCode(), r.stderr());
        assertTrue(r.stdout().contains("output architecture: Mixtral"), r.stdout());
        assertTrue(r.stdout().contains("model.layers.1.mlp.experts.gate_up_proj [2, 96, 32]"), r.stdout());
        assertTrue(r.stdout().contains("num_local_experts: 2"), r.stdout());
        assertTrue(r.stderr().contains("--load-in-4bit is not needed"), r.stderr());
        try (var s = Files.list(dir)) {
            assertTrue(s.noneMatch(x -> x.getFileName().toString().startsWith(".out") || x.getFileName().toString().equals("out")));
        }
    }
}
