package org.mergeengine.tokenize;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.formats.Json;
import org.mergeengine.tools.SyntheticModel;

/** Token ids equal Python tokenizers' (fixture from scripts/tokenizer_fixture.py), and prompts are batched as mergekit-moe batches them. */
class PromptTokenizerTest {
    @TempDir
    Path dir;

    static JsonNode resource(String name) throws Exception {
        try (InputStream in = PromptTokenizerTest.class.getResourceAsStream("/tokenize/" + name)) {
            return Json.MAPPER.readTree(in);
        }
    }

    void sameIdsAsPython(String name) throws Exception {
        Path d = Files.createDirectories(dir.resolve(name));
        try (InputStream in = PromptTokenizerTest.class.getResourceAsStream("/tokenize/" + name + ".json")) {
            Files.copy(in, d.resolve("tokenizer.json"));
        }
        JsonNode fx = resource(name + ".ids.json");
        int n = fx.get("strings").size();
        assertTrue(n >= 150, "fixture has " + n + " strings");
        try (PromptTokenizer tok = PromptTokenizer.open(d)) {
            for (int i = 0; i < n; i++) {
                String s = fx.get("strings").get(i).asText();
                JsonNode want = fx.get("ids").get(i);
                int[] w = new int[want.size()];
                for (int k = 0; k < w.length; k++) w[k] = want.get(k).asInt();
                assertArrayEquals(w, tok.encode(s), name + " string " + i + ": " + s);
            }
        }
    }

    @Test
    void byteLevelBpeIdsEqualPythons() throws Exception {
        sameIdsAsPython("bytelevel");
    }

    @Test
    void metaspaceBpeWithByteFallbackIdsEqualPythons() throws Exception {
        sameIdsAsPython("metaspace");
    }

    @Test
    void promptsArePrefixedWithBosTextAndLeftPaddedWithTheBosId() throws Exception {
        SyntheticModel.writeTokenizer(dir, 100, List.of());
        try (PromptTokenizer tok = PromptTokenizer.open(dir)) {
            assertEquals("<s>", tok.bosText());
            assertEquals(1, tok.padId());
            JsonNode vocab = Json.read(dir.resolve("tokenizer.json")).get("model").get("vocab");
            int a = vocab.get("a").asInt(), ab = vocab.get("ab").asInt(), c = vocab.get("c").asInt();
            PromptTokenizer.Batch b = tok.batch(List.of("ab c", "a"));
            // "<s>ab c" -> <s>, ab, c ; "<s>a" -> pad, <s>, a
            assertArrayEquals(new int[] {1, ab, c}, b.ids()[0]);
            assertArrayEquals(new int[] {1, 1, a}, b.ids()[1]);
            assertArrayEquals(new int[] {1, 1, 1}, b.mask()[0]);
            assertArrayEquals(new int[] {0, 1, 1}, b.mask()[1]);
        }
    }

    @Test
    void withoutBosThePadIsEos() throws Exception {
        SyntheticModel.writeTokenizer(dir, 100, List.of());
        ObjectNode tc = Json.readObject(dir.resolve("tokenizer_config.json"));
        tc.remove("bos_token");
        Json.write(dir.resolve("tokenizer_config.json"), tc);
        ObjectNode sm = Json.readObject(dir.resolve("special_tokens_map.json"));
        sm.remove("bos_token");
        Json.write(dir.resolve("special_tokens_map.json"), sm);
        try (PromptTokenizer tok = PromptTokenizer.open(dir)) {
            PromptTokenizer.Batch b = tok.batch(List.of("ab c", "a"));
            assertEquals(2, b.ids()[1][0]);
            assertEquals(0, b.mask()[1][0]);
            assertEquals(1, b.mask()[1][1]);
        }
    }
}
