package org.mergeengine.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.tools.SyntheticModel;

/**
 * Merged tokenizers, after mergekit's tokenizer tests: a base of 64 tokens, a ChatML model of 66
 * (two added tokens with their own rows) and a padded model whose tokenizer has 4 unused tokens past
 * its 64 embedding rows.
 */
class TokenizerMergeTest {
    @TempDir
    static Path dir;
    static final int H = 32;

    @BeforeAll
    static void models() throws Exception {
        SyntheticModel.write(dir.resolve("base"), spec(64), DType.F32, 1, 1, 0, 0);
        SyntheticModel.write(dir.resolve("chatml"), spec(66), DType.F32, 1, 2, 0.2, 0);
        SyntheticModel.writeTokenizer(dir.resolve("chatml"), 64, List.of("<|im_start|>", "<|im_end|>"));
        SyntheticModel.write(dir.resolve("padded"), spec(64), DType.F32, 1, 3, 0.2, 0);
        SyntheticModel.writeTokenizer(dir.resolve("padded"), 64, List.of("<UNUSED_0>", "<UNUSED_1>", "<UNUSED_2>", "<UNUSED_3>"));
    }

    static SyntheticModel.Spec spec(int vocab) {
        return new SyntheticModel.Spec(H, 64, 2, vocab, 4, 2, false);
    }

    static Path merge(String yaml) throws Exception {
        Path cfg = Files.writeString(dir.resolve("c" + System.nanoTime() + ".yaml"), yaml);
        Path out = dir.resolve("o" + System.nanoTime());
        TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--quiet");
        assertEquals(0, r.exitCode(), r.stderr());
        return out;
    }

    static final String THREE = "models:\n  - model: base\n    parameters: {weight: 1}\n  - model: chatml\n    parameters: {weight: 1}\n"
            + "  - model: padded\n    parameters: {weight: 1}\nmerge_method: linear\nbase_model: base\n";

    /** token -> id of an output tokenizer, checking it is valid: ids 0..n-1, each once, every added token listed. */
    static Map<String, Integer> vocab(Path out) throws Exception {
        JsonNode tok = Json.read(out.resolve("tokenizer.json"));
        Map<String, Integer> ids = new HashMap<>();
        tok.get("model").get("vocab").fields().forEachRemaining(e -> ids.put(e.getKey(), e.getValue().asInt()));
        for (JsonNode a : tok.get("added_tokens")) ids.put(a.get("content").asText(), a.get("id").asInt());
        Set<Integer> seen = new HashSet<>(ids.values());
        assertEquals(ids.size(), seen.size(), "every id is used once");
        for (int i = 0; i < ids.size(); i++) assertTrue(seen.contains(i), "ids are contiguous: " + i + " missing");
        return ids;
    }

    static int added(Path out) {
        return Json.read(out.resolve("tokenizer.json")).get("added_tokens").size();
    }

    static float[] row(Path model, String tensor, int id) {
        try (ModelFolder m = ModelFolder.open(model)) {
            float[] all = TestSupport.floats(m, tensor);
            return java.util.Arrays.copyOfRange(all, id * H, (id + 1) * H);
        }
    }

    @Test
    void legacyAndBaseSourceKeepTheBaseVocabulary() throws Exception {
        Path legacy = merge(THREE);
        assertEquals(64, vocab(legacy).size());
        assertEquals(3, added(legacy));
        Path base = merge(THREE + "tokenizer_source: base\n");
        assertEquals(64, vocab(base).size());
        assertEquals(3, added(base));
        assertEquals(64, Json.read(base.resolve("config.json")).get("vocab_size").asInt());
    }

    @Test
    void unionAddsTheChatmlTokensAndLeavesUnusedOnesOut() throws Exception {
        Path out = merge(THREE + "tokenizer_source: union\n");
        Map<String, Integer> v = vocab(out);
        assertEquals(66, v.size());
        assertEquals(5, added(out));
        assertTrue(v.containsKey("<|im_start|>") && v.containsKey("<|im_end|>"));
        assertFalse(v.keySet().stream().anyMatch(t -> t.startsWith("<UNUSED")));
        assertEquals(66, Json.read(out.resolve("config.json")).get("vocab_size").asInt());
        for (String t : new String[] {"<|im_start|>", "<|im_end|>"}) {
            int oldId = t.equals("<|im_start|>") ? 64 : 65;
            assertArrayEquals(row(dir.resolve("chatml"), "model.embed_tokens.weight", oldId), row(out, "model.embed_tokens.weight", v.get(t)), 1e-5f,
                    "only the ChatML model has " + t + ": the others default to its row");
            assertArrayEquals(row(dir.resolve("chatml"), "lm_head.weight", oldId), row(out, "lm_head.weight", v.get(t)), 1e-5f);
        }
        float[] a = row(dir.resolve("base"), "model.embed_tokens.weight", 5), b = row(dir.resolve("chatml"), "model.embed_tokens.weight", 5),
                c = row(dir.resolve("padded"), "model.embed_tokens.weight", 5), o = row(out, "model.embed_tokens.weight", 5);
        for (int j = 0; j < H; j++) assertEquals((a[j] + b[j] + c[j]) / 3, o[j], 1e-5, "shared tokens are merged by the method");
    }

    @Test
    void modelSourceAndSlerp() throws Exception {
        Path out = merge(THREE + "tokenizer_source: chatml\n");
        Map<String, Integer> v = vocab(out);
        assertEquals(66, v.size());
        assertTrue(v.containsKey("<|im_end|>"));
        Path s = merge("merge_method: slerp\nbase_model: base\nparameters: {t: 0.5}\nmodels:\n  - model: base\n  - model: chatml\ntokenizer_source: union\n");
        assertEquals(66, vocab(s).size());
        try (ModelFolder m = ModelFolder.open(s)) {
            assertArrayEquals(new long[] {66, H}, m.tensor("model.embed_tokens.weight").info().shape());
        }
    }

    @Test
    void forcedAndModelTokenSources() throws Exception {
        Path out = merge(THREE + "tokenizer:\n  source: union\n  tokens:\n    k:\n      source: chatml\n      force: true\n"
                + "    l:\n      source: base\n      force: true\n");
        Map<String, Integer> v = vocab(out);
        assertArrayEquals(row(dir.resolve("chatml"), "model.embed_tokens.weight", v.get("k")), row(out, "model.embed_tokens.weight", v.get("k")), 1e-5f);
        assertArrayEquals(row(dir.resolve("base"), "model.embed_tokens.weight", v.get("l")), row(out, "model.embed_tokens.weight", v.get("l")), 1e-5f);

        Path mt = merge(THREE + "tokenizer:\n  source: base\n  tokens:\n    m:\n      source: {kind: model_token, model: chatml, token_id: 64}\n      force: true\n"
                + "    n:\n      source: {kind: model_token, model: base, token: \"<s>\"}\n      force: true\n    o:\n      source: {kind: zero}\n      force: true\n");
        Map<String, Integer> w = vocab(mt);
        assertEquals(64, w.size());
        assertArrayEquals(row(dir.resolve("chatml"), "model.embed_tokens.weight", 64), row(mt, "model.embed_tokens.weight", w.get("m")), 1e-5f);
        assertArrayEquals(row(dir.resolve("base"), "model.embed_tokens.weight", 1), row(mt, "model.embed_tokens.weight", w.get("n")), 1e-5f);
        assertArrayEquals(new float[H], row(mt, "model.embed_tokens.weight", w.get("o")));
    }

    @Test
    void padToMultipleOf() throws Exception {
        Path out = merge("merge_method: linear\nmodels:\n  - model: chatml\n    parameters: {weight: 1}\ntokenizer:\n  source: base\n  pad_to_multiple_of: 16\n");
        assertEquals(66, vocab(out).size());
        assertEquals(80, Json.read(out.resolve("config.json")).get("vocab_size").asInt());
        try (ModelFolder m = ModelFolder.open(out)) {
            assertArrayEquals(new long[] {80, H}, m.tensor("model.embed_tokens.weight").info().shape());
            float[] e = TestSupport.floats(m, "model.embed_tokens.weight");
            for (int j = 0; j < H; j++) {
                double mean = 0;
                for (int r = 0; r < 66; r++) mean += e[r * H + j];
                assertEquals(mean / 66, e[79 * H + j], 1e-5, "padding rows hold the mean row");
            }
        }
    }

    @Test
    void chatTemplates() throws Exception {
        Path named = merge(THREE + "chat_template: chatml\n");
        assertTrue(Json.read(named.resolve("tokenizer_config.json")).get("chat_template").asText().contains("<|im_start|>"));
        Path literal = merge(THREE + "chat_template: \"{{messages[0]['content']}}\"\n");
        assertEquals("{{messages[0]['content']}}", Json.read(literal.resolve("tokenizer_config.json")).get("chat_template").asText());
        Path cfg = Files.writeString(dir.resolve("badtemplate.yaml"), THREE + "chat_template: abc\n");
        TestSupport.Result r = TestSupport.cli(cfg.toString(), dir.resolve("bt").toString(), "--quiet");
        assertEquals(2, r.exitCode());
        assertTrue(r.stderr().contains("chat_template"), r.stderr());
    }

    @Test
    void tokenWithoutSourceIsAConfigError() throws Exception {
        Path cfg = Files.writeString(dir.resolve("nosrc.yaml"), THREE + "tokenizer:\n  tokens:\n    k:\n      force: true\n");
        TestSupport.Result r = TestSupport.cli(cfg.toString(), dir.resolve("nosrc").toString(), "--quiet");
        assertEquals(2, r.exitCode());
        assertTrue(r.stderr().contains("tokenizer.tokens.k.source"), r.stderr());
    }
}
