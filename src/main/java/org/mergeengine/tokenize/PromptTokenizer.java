package org.mergeengine.tokenize;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.mergeengine.MergeException;
import org.mergeengine.formats.Json;

/**
 * A model's tokenizer.json run by Hugging Face's tokenizers library (the Rust implementation,
 * through DJL's JNI binding), so token ids equal Python's for the same file. Prompts follow
 * mergekit-moe's conventions: the BOS token's text is prefixed as plain text, no special tokens
 * are added, and a list of prompts becomes one batch left-padded with the BOS id (the EOS id when
 * there is no BOS).
 */
public final class PromptTokenizer implements AutoCloseable {
    /** A left-padded batch: {@code ids[b][t]}, {@code mask[b][t]} 1 for real tokens. */
    public record Batch(int[][] ids, int[][] mask) {}

    private final HuggingFaceTokenizer tokenizer;
    private final String bosText;
    private final Integer padId;

    private PromptTokenizer(HuggingFaceTokenizer tokenizer, String bosText, Integer padId) {
        this.tokenizer = tokenizer;
        this.bosText = bosText;
        this.padId = padId;
    }

    /** The tokenizer of a model folder (its tokenizer.json and tokenizer_config.json / special_tokens_map.json). */
    public static PromptTokenizer open(Path modelDir) {
        Path file = modelDir.resolve("tokenizer.json");
        if (!Files.isRegularFile(file)) {
            throw MergeException.user(modelDir + " has no tokenizer.json; the gate modes that read prompts need the base model's fast tokenizer "
                    + "(save it with transformers' AutoTokenizer.save_pretrained)");
        }
        configureDjl();
        HuggingFaceTokenizer tok;
        try {
            tok = HuggingFaceTokenizer.builder().optTokenizerPath(file).optAddSpecialTokens(false).optPadding(false).optTruncation(false).build();
        } catch (IOException | RuntimeException e) {
            throw MergeException.user(file + ": cannot load the tokenizer (" + e.getMessage() + ")");
        }
        JsonNode json = Json.read(file);
        String bos = special(modelDir, "bos_token");
        String eos = special(modelDir, "eos_token");
        Integer bosId = bos == null ? null : tokenId(json, bos, tok);
        Integer pad = bosId != null ? bosId : eos == null ? null : tokenId(json, eos, tok);
        return new PromptTokenizer(tok, bos, pad);
    }

    /** The native library is in the jar: never let DJL look for one online. */
    static void configureDjl() {
        if (System.getProperty("ai.djl.offline") == null) System.setProperty("ai.djl.offline", "true");
    }

    public String bosText() { return bosText; }
    public Integer padId() { return padId; }

    /** Token ids of {@code text}, no special tokens added. */
    public int[] encode(String text) {
        Encoding e = tokenizer.encode(text, false, false);
        long[] ids = e.getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = Math.toIntExact(ids[i]);
        return out;
    }

    /** The prompts as one batch, each prefixed with the BOS text, left-padded to the longest. */
    public Batch batch(List<String> prompts) {
        int[][] enc = new int[prompts.size()][];
        int longest = 0;
        for (int i = 0; i < prompts.size(); i++) {
            enc[i] = encode((bosText == null ? "" : bosText) + prompts.get(i));
            longest = Math.max(longest, enc[i].length);
        }
        int[][] ids = new int[enc.length][longest], mask = new int[enc.length][longest];
        for (int i = 0; i < enc.length; i++) {
            int pad = longest - enc[i].length;
            if (pad > 0 && padId == null) {
                throw MergeException.user("the base model's tokenizer has neither a BOS nor an EOS token to pad prompts of different lengths with");
            }
            for (int t = 0; t < longest; t++) {
                ids[i][t] = t < pad ? padId : enc[i][t - pad];
                mask[i][t] = t < pad ? 0 : 1;
            }
        }
        return new Batch(ids, mask);
    }

    /** A special token's text from tokenizer_config.json, else special_tokens_map.json (a string or {content}). */
    static String special(Path dir, String key) {
        for (String f : new String[] {"tokenizer_config.json", "special_tokens_map.json"}) {
            Path p = dir.resolve(f);
            if (!Files.isRegularFile(p)) continue;
            JsonNode v = Json.read(p).get(key);
            if (v == null || v.isNull()) continue;
            if (v.isTextual()) return v.asText();
            if (v.hasNonNull("content")) return v.get("content").asText();
        }
        return null;
    }

    private static Integer tokenId(JsonNode json, String token, HuggingFaceTokenizer tok) {
        for (JsonNode a : json.path("added_tokens")) {
            if (token.equals(a.path("content").asText(null))) return a.path("id").asInt();
        }
        JsonNode vocab = json.path("model").path("vocab");
        if (vocab.isObject() && vocab.has(token)) return vocab.get(token).asInt();
        long[] ids = tok.encode(token, false, false).getIds();
        return ids.length == 1 ? Math.toIntExact(ids[0]) : null;
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
