package org.mergeengine.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.TinyModels;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.tensor.Convert;
import org.mergeengine.tensor.CounterRandom;
import org.mergeengine.tools.SyntheticModel;

/** model+adapter references: PEFT's LoRA semantics applied while streaming, and the tokenizer that goes with them. */
class LoraTest {
    @TempDir
    static Path dir;
    static final int H = 32, V = 96;

    @BeforeAll
    static void models() throws Exception {
        TinyModels.write(dir, DType.F32, 1);
    }

    static float[] rand(int n, long seed) {
        float[] x = new float[n];
        long k = CounterRandom.streamKey(seed, "lora", 0);
        for (int i = 0; i < n; i++) x[i] = (float) (CounterRandom.uniform(k, i) - 0.5);
        return x;
    }

    record Pair(String module, float[] a, long[] aShape, float[] b, long[] bShape, boolean embedding) {}

    static Path adapter(String name, ObjectNode cfg, List<Pair> pairs, List<SafetensorsWriter.TensorData> extra) throws Exception {
        Path a = dir.resolve(name);
        Files.createDirectories(a);
        Json.write(a.resolve("adapter_config.json"), cfg);
        List<SafetensorsWriter.TensorData> t = new ArrayList<>(extra);
        for (Pair p : pairs) {
            String pa = p.embedding ? ".lora_embedding_A" : ".lora_A.weight", pb = p.embedding ? ".lora_embedding_B" : ".lora_B.weight";
            t.add(Convert.tensorData("base_model.model." + p.module + pa, DType.F32, p.aShape, p.a));
            t.add(Convert.tensorData("base_model.model." + p.module + pb, DType.F32, p.bShape, p.b));
        }
        SafetensorsWriter.writeFile(a.resolve("adapter_model.safetensors"), t);
        return a;
    }

    static ObjectNode config(int r, double alpha) {
        ObjectNode c = Json.MAPPER.createObjectNode();
        c.put("peft_type", "LORA");
        c.put("r", r);
        c.put("lora_alpha", alpha);
        c.putArray("target_modules").add("q_proj").add("v_proj");
        return c;
    }

    static Pair linear(String module, int out, int in, int r, long seed) {
        return new Pair(module, rand(r * in, seed), new long[] {r, in}, rand(out * r, seed + 1), new long[] {out, r}, false);
    }

    /** W + s·B·A ([out, in]) or W + s·(B·A)^T when transposed. */
    static float[] expected(float[] w, Pair p, double s, boolean transposed) {
        int r = (int) p.aShape[0], in = (int) p.aShape[1], out = (int) p.bShape[0];
        float[] e = w.clone();
        for (int i = 0; i < out; i++) {
            for (int j = 0; j < in; j++) {
                double d = 0;
                for (int k = 0; k < r; k++) d += p.b[i * r + k] * (double) p.a[k * in + j];
                int at = transposed ? j * out + i : i * in + j;
                e[at] += (float) (s * d);
            }
        }
        return e;
    }

    static Path passthrough(String ref) throws Exception {
        Path cfg = Files.writeString(dir.resolve("p" + System.nanoTime() + ".yaml"), "merge_method: passthrough\nmodels:\n  - model: " + ref + "\n");
        Path out = dir.resolve("out" + System.nanoTime());
        TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--quiet");
        assertEquals(0, r.exitCode(), r.stderr());
        return out;
    }

    @Test
    void scaleRsLoraAndPatterns() throws Exception {
        Pair q = linear("model.layers.1.self_attn.q_proj", H, H, 4, 10), v = linear("model.layers.1.self_attn.v_proj", 16, H, 2, 20);
        ObjectNode c = config(4, 8);
        c.put("use_rslora", true);
        c.putObject("rank_pattern").put("v_proj", 2);
        c.putObject("alpha_pattern").put("layers.1.self_attn.v_proj", 3);
        adapter("rs", c, List.of(q, v), List.of());
        Path out = passthrough("base+rs");
        try (ModelFolder got = ModelFolder.open(out); ModelFolder base = ModelFolder.open(dir.resolve("base"))) {
            assertArrayEquals(expected(TestSupport.floats(base, "model.layers.1.self_attn.q_proj.weight"), q, 8 / Math.sqrt(4), false),
                    TestSupport.floats(got, "model.layers.1.self_attn.q_proj.weight"), 1e-5f);
            assertArrayEquals(expected(TestSupport.floats(base, "model.layers.1.self_attn.v_proj.weight"), v, 3 / Math.sqrt(2), false),
                    TestSupport.floats(got, "model.layers.1.self_attn.v_proj.weight"), 1e-5f);
            assertArrayEquals(TestSupport.floats(base, "model.layers.0.self_attn.q_proj.weight"),
                    TestSupport.floats(got, "model.layers.0.self_attn.q_proj.weight"), "untargeted tensors are unchanged");
        }
    }

    @Test
    void fanInFanOutAndEmbeddingAdaptersAreTransposed() throws Exception {
        Pair o = linear("model.layers.0.self_attn.o_proj", H, H, 2, 30);
        Pair emb = new Pair("model.embed_tokens", rand(2 * V, 40), new long[] {2, V}, rand(H * 2, 41), new long[] {H, 2}, true);
        ObjectNode c = config(2, 2);
        c.put("fan_in_fan_out", true);
        adapter("fifo", c, List.of(o, emb), List.of());
        Path out = passthrough("base+fifo");
        try (ModelFolder got = ModelFolder.open(out); ModelFolder base = ModelFolder.open(dir.resolve("base"))) {
            assertArrayEquals(expected(TestSupport.floats(base, "model.layers.0.self_attn.o_proj.weight"), o, 1.0, true),
                    TestSupport.floats(got, "model.layers.0.self_attn.o_proj.weight"), 1e-5f);
            assertArrayEquals(expected(TestSupport.floats(base, "model.embed_tokens.weight"), emb, 1.0, true),
                    TestSupport.floats(got, "model.embed_tokens.weight"), 1e-5f);
        }
    }

    /** An adapter trained with added tokens: resized embed_tokens/lm_head in modules_to_save and its own tokenizer. */
    static Path addedTokenAdapter() throws Exception {
        Path a = dir.resolve("chatml");
        if (Files.exists(a)) return a;
        List<SafetensorsWriter.TensorData> full = List.of(
                Convert.tensorData("base_model.model.model.embed_tokens.weight", DType.F32, new long[] {V + 2, H}, rand((V + 2) * H, 50)),
                Convert.tensorData("base_model.model.lm_head.weight", DType.F32, new long[] {V + 2, H}, rand((V + 2) * H, 51)));
        ObjectNode c = config(4, 4);
        c.putArray("modules_to_save").add("embed_tokens").add("lm_head");
        adapter("chatml", c, List.of(linear("model.layers.2.self_attn.q_proj", H, H, 4, 60)), full);
        SyntheticModel.writeTokenizer(a, V, List.of("<|im_start|>", "<|im_end|>"));
        ObjectNode tc = Json.readObject(a.resolve("tokenizer_config.json"));
        tc.put("chat_template", "{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}");
        Json.write(a.resolve("tokenizer_config.json"), tc);
        return a;
    }

    @Test
    void loraPassthroughKeepsTheAdaptersTokenizerAndVocabulary() throws Exception {
        Path a = addedTokenAdapter();
        Path out = passthrough("base+chatml");
        for (String f : new String[] {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
            assertTrue(Files.exists(out.resolve(f)), f + " is missing");
            assertArrayEquals(Files.readAllBytes(a.resolve(f)), Files.readAllBytes(out.resolve(f)), f + " must be the adapter's");
        }
        assertEquals(V + 2, Json.read(out.resolve("config.json")).get("vocab_size").asInt());
        try (ModelFolder got = ModelFolder.open(out); ModelFolder ad = ModelFolder.open(dir.resolve("base"))) {
            assertArrayEquals(new long[] {V + 2, H}, got.tensor("model.embed_tokens.weight").info().shape());
            assertArrayEquals(new long[] {V + 2, H}, got.tensor("lm_head.weight").info().shape());
            assertArrayEquals(rand((V + 2) * H, 50), TestSupport.floats(got, "model.embed_tokens.weight"));
            assertFalse(java.util.Arrays.equals(TestSupport.floats(ad, "model.layers.2.self_attn.q_proj.weight"),
                    TestSupport.floats(got, "model.layers.2.self_attn.q_proj.weight")));
        }
    }

    @Test
    void loraPassthroughWithoutAdapterTokenizerKeepsTheBases() throws Exception {
        adapter("plain", config(4, 8), List.of(linear("model.layers.0.self_attn.q_proj", H, H, 4, 70)), List.of());
        Path out = passthrough("base+plain");
        for (String f : new String[] {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
            assertArrayEquals(Files.readAllBytes(dir.resolve("base").resolve(f)), Files.readAllBytes(out.resolve(f)), f + " must be the base's");
        }
    }

    @Test
    void addedTokensSurviveAUnionMergeWithAnotherModel() throws Exception {
        addedTokenAdapter();
        Path cfg = Files.writeString(dir.resolve("union.yaml"), "merge_method: linear\nbase_model: base+chatml\ntokenizer_source: union\n"
                + "models:\n  - model: base+chatml\n    parameters: {weight: 0.5}\n  - model: ft1\n    parameters: {weight: 0.5}\n");
        Path out = dir.resolve("union-out");
        TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--quiet");
        assertEquals(0, r.exitCode(), r.stderr());
        var tok = Json.read(out.resolve("tokenizer.json"));
        List<String> added = new ArrayList<>();
        tok.get("added_tokens").forEach(t -> added.add(t.get("content").asText()));
        assertTrue(added.contains("<|im_start|>") && added.contains("<|im_end|>"), added.toString());
        assertEquals(V + 2, Json.read(out.resolve("config.json")).get("vocab_size").asInt());
        try (ModelFolder got = ModelFolder.open(out)) {
            float[] e = TestSupport.floats(got, "model.embed_tokens.weight"), src = rand((V + 2) * H, 50);
            // only the adapter has the new tokens: the other model takes the adapter's rows, so the merge returns them
            for (int j = 0; j < H; j++) assertEquals(src[V * H + j], e[V * H + j], 1e-6);
        }
    }

    static String fails(String ref) throws Exception {
        Path cfg = Files.writeString(dir.resolve("bad" + System.nanoTime() + ".yaml"), "merge_method: passthrough\nmodels:\n  - model: " + ref + "\n");
        Path out = dir.resolve("bad-out" + System.nanoTime());
        TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--quiet");
        assertEquals(2, r.exitCode(), r.stderr());
        assertFalse(Files.exists(out));
        return r.stderr();
    }

    @Test
    void badAdaptersAreNamed() throws Exception {
        Pair bad = new Pair("model.layers.0.self_attn.q_proj", rand(4 * H, 1), new long[] {4, H}, rand(H * 3, 2), new long[] {H, 3}, false);
        adapter("rankmismatch", config(4, 8), List.of(bad), List.of());
        String e = fails("base+rankmismatch");
        assertTrue(e.contains("rank mismatch") && e.contains("adapter_model.safetensors") && e.contains("q_proj.lora_A"), e);
        adapter("absent", config(4, 8), List.of(linear("model.layers.9.self_attn.q_proj", H, H, 4, 3)), List.of());
        e = fails("base+absent");
        assertTrue(e.contains("model.layers.9.self_attn.q_proj.weight") && e.contains("does not have"), e);
        Path noCfg = Files.createDirectories(dir.resolve("nocfg"));
        Files.writeString(noCfg.resolve("README.md"), "not an adapter");
        e = fails("base+nocfg");
        assertTrue(e.contains("adapter_config.json") && e.contains("nocfg"), e);
        adapter("wrongrank", config(8, 8), List.of(linear("model.layers.0.self_attn.q_proj", H, H, 4, 4)), List.of());
        e = fails("base+wrongrank");
        assertTrue(e.contains("r = 8") && e.contains("rank 4"), e);
    }
}
