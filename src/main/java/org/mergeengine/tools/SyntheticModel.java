package org.mergeengine.tools;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.formats.ShardLayout;
import org.mergeengine.tensor.CounterRandom;
import org.mergeengine.tensor.Convert;

/**
 * Writes deterministic Llama-shaped models (config.json, a small BPE tokenizer, safetensors
 * weights, sharded when large): the shipped example models, test fixtures and benchmark inputs.
 * A "fine-tune" is its base's weights plus small noise of its own seed, so merges of such models
 * behave like merges of real fine-tunes.
 */
public final class SyntheticModel {
    /** Shape of the model. */
    public record Spec(int hidden, int intermediate, int layers, int vocab, int heads, int kvHeads, boolean tiedEmbeddings) {
        public static Spec tiny() {
            return new Spec(32, 64, 4, 96, 4, 2, false);
        }

        /** A Llama-like shape of roughly {@code bytes} bytes in bf16. */
        public static Spec ofSize(long bytes) {
            int hidden = bytes > 3_000_000_000L ? 4096 : 2048;
            int inter = hidden * 11 / 4;
            int vocab = 32000;
            long kv = hidden / 4; // 8 key/value heads of 64 against 32 query heads
            long perLayer = 2L * hidden * hidden + 2L * kv * hidden + 3L * hidden * inter + 2L * hidden;
            long edges = 2L * vocab * hidden + hidden;
            int layers = (int) Math.max(1, Math.round((bytes / 2.0 - edges) / perLayer));
            return new Spec(hidden, inter, layers, vocab, hidden / 64, hidden / 256, false);
        }

        public long headDim() {
            return hidden / heads;
        }

        public List<ShardLayout.Entry> tensors(DType dt) {
            List<ShardLayout.Entry> t = new ArrayList<>();
            t.add(new ShardLayout.Entry("model.embed_tokens.weight", dt, new long[] {vocab, hidden}));
            long kv = headDim() * kvHeads;
            for (int i = 0; i < layers; i++) {
                String p = "model.layers." + i + ".";
                t.add(new ShardLayout.Entry(p + "input_layernorm.weight", dt, new long[] {hidden}));
                t.add(new ShardLayout.Entry(p + "self_attn.q_proj.weight", dt, new long[] {hidden, hidden}));
                t.add(new ShardLayout.Entry(p + "self_attn.k_proj.weight", dt, new long[] {kv, hidden}));
                t.add(new ShardLayout.Entry(p + "self_attn.v_proj.weight", dt, new long[] {kv, hidden}));
                t.add(new ShardLayout.Entry(p + "self_attn.o_proj.weight", dt, new long[] {hidden, hidden}));
                t.add(new ShardLayout.Entry(p + "post_attention_layernorm.weight", dt, new long[] {hidden}));
                t.add(new ShardLayout.Entry(p + "mlp.gate_proj.weight", dt, new long[] {intermediate, hidden}));
                t.add(new ShardLayout.Entry(p + "mlp.up_proj.weight", dt, new long[] {intermediate, hidden}));
                t.add(new ShardLayout.Entry(p + "mlp.down_proj.weight", dt, new long[] {hidden, intermediate}));
            }
            t.add(new ShardLayout.Entry("model.norm.weight", dt, new long[] {hidden}));
            if (!tiedEmbeddings) t.add(new ShardLayout.Entry("lm_head.weight", dt, new long[] {vocab, hidden}));
            return t;
        }
    }

    private SyntheticModel() {}

    /**
     * Writes a model into {@code dir}: weights are those of the base seed {@code baseSeed} plus
     * {@code delta} times noise of {@code ownSeed} (delta 0 writes the base itself).
     */
    public static void write(Path dir, Spec spec, DType dtype, long baseSeed, long ownSeed, double delta, long shardBytes) throws IOException {
        Files.createDirectories(dir);
        List<ShardLayout.Entry> entries = spec.tensors(dtype);
        ShardLayout layout = ShardLayout.plan(entries, shardBytes, "model");
        try (SafetensorsWriter w = new SafetensorsWriter(dir, layout)) {
            int chunk = 1 << 20;
            float[] buf = new float[chunk];
            ByteBuffer bytes = ByteBuffer.allocate(chunk * dtype.size()).order(ByteOrder.LITTLE_ENDIAN);
            for (ShardLayout.Entry e : entries) {
                long n = e.byteSize() / dtype.size();
                boolean norm = e.shape().length == 1;
                double scale = norm ? 0.05 : 1.0 / Math.sqrt(e.shape()[e.shape().length - 1]);
                long bk = CounterRandom.streamKey(baseSeed, e.name(), 0), ok = CounterRandom.streamKey(ownSeed, e.name(), 1);
                for (long s = 0; s < n; s += chunk) {
                    int len = (int) Math.min(chunk, n - s);
                    for (int j = 0; j < len; j++) {
                        double v = (norm ? 1.0 : 0.0) + scale * gauss(bk, s + j);
                        if (delta != 0) v += delta * scale * gauss(ok, s + j);
                        buf[j] = (float) v;
                    }
                    bytes.clear();
                    Convert.encode(dtype, buf, 0, len, bytes);
                    bytes.flip();
                    w.write(e.name(), s * dtype.size(), bytes);
                }
            }
            w.finish();
        }
        if (layout.index() != null) Json.write(dir.resolve("model.safetensors.index.json"), layout.index());
        Json.write(dir.resolve("config.json"), config(spec, dtype));
        writeTokenizer(dir, spec.vocab, List.of());
    }

    /** A standard normal draw as a pure function of (key, index): sum of four uniforms, rescaled. */
    static double gauss(long key, long index) {
        double s = 0;
        for (int k = 0; k < 4; k++) s += CounterRandom.uniform(key, index * 4 + k);
        return (s - 2.0) * Math.sqrt(3.0);
    }

    public static ObjectNode config(Spec s, DType dtype) {
        ObjectNode c = Json.MAPPER.createObjectNode();
        c.putArray("architectures").add("LlamaForCausalLM");
        c.put("model_type", "llama");
        c.put("hidden_size", s.hidden);
        c.put("intermediate_size", s.intermediate);
        c.put("num_hidden_layers", s.layers);
        c.put("num_attention_heads", s.heads);
        c.put("num_key_value_heads", s.kvHeads);
        c.put("head_dim", s.headDim());
        c.put("vocab_size", s.vocab);
        c.put("max_position_embeddings", 2048);
        c.put("rms_norm_eps", 1e-5);
        c.put("rope_theta", 10000.0);
        c.put("hidden_act", "silu");
        c.put("tie_word_embeddings", s.tiedEmbeddings);
        c.put("torch_dtype", dtype.torchName());
        c.put("bos_token_id", 1);
        c.put("eos_token_id", 2);
        return c;
    }

    /**
     * A valid word-level BPE tokenizer with {@code vocab} ids: three specials, single characters,
     * then generated two-letter pieces; {@code added} become extra added tokens after them.
     */
    public static void writeTokenizer(Path dir, int vocab, List<String> added) throws IOException {
        ObjectNode tok = Json.MAPPER.createObjectNode();
        tok.put("version", "1.0");
        tok.putNull("truncation");
        tok.putNull("padding");
        ArrayNode at = tok.putArray("added_tokens");
        String[] specials = {"<unk>", "<s>", "</s>"};
        for (int i = 0; i < specials.length; i++) addedToken(at, i, specials[i]);
        for (int i = 0; i < added.size(); i++) addedToken(at, vocab + i, added.get(i));
        tok.putNull("normalizer");
        tok.putObject("pre_tokenizer").put("type", "Whitespace");
        tok.putNull("post_processor");
        tok.putNull("decoder");
        ObjectNode model = tok.putObject("model");
        model.put("type", "BPE");
        model.putNull("dropout");
        model.put("unk_token", "<unk>");
        model.putNull("continuing_subword_prefix");
        model.putNull("end_of_word_suffix");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        ObjectNode v = model.putObject("vocab");
        String letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        int id = 0;
        for (String s : specials) v.put(s, id++);
        for (int i = 0; id < vocab && i < letters.length(); i++) v.put(String.valueOf(letters.charAt(i)), id++);
        ArrayNode merges = model.putArray("merges");
        // Pieces of two, then three, ... lowercase letters in order: every piece's prefix is already a
        // token, so the merge "prefix last" builds it and the BPE stays valid at any size.
        for (long i = 0; id < vocab; i++) {
            String piece = piece(i);
            if (v.has(piece)) continue;
            v.put(piece, id++);
            merges.add(piece.substring(0, piece.length() - 1) + " " + piece.charAt(piece.length() - 1));
        }
        Json.write(dir.resolve("tokenizer.json"), tok);
        ObjectNode tc = Json.MAPPER.createObjectNode();
        tc.put("add_bos_token", true);
        tc.put("add_eos_token", false);
        tc.put("bos_token", "<s>");
        tc.put("eos_token", "</s>");
        tc.put("unk_token", "<unk>");
        tc.put("model_max_length", 2048);
        tc.put("tokenizer_class", "PreTrainedTokenizerFast");
        Json.write(dir.resolve("tokenizer_config.json"), tc);
        ObjectNode sm = Json.MAPPER.createObjectNode();
        sm.put("bos_token", "<s>");
        sm.put("eos_token", "</s>");
        sm.put("unk_token", "<unk>");
        Json.write(dir.resolve("special_tokens_map.json"), sm);
    }

    /** The i-th string of two or more lowercase letters, shortest first. */
    static String piece(long i) {
        int len = 2;
        long count = 26 * 26;
        while (i >= count) {
            i -= count;
            count *= 26;
            len++;
        }
        char[] c = new char[len];
        for (int k = len - 1; k >= 0; k--) {
            c[k] = (char) ('a' + i % 26);
            i /= 26;
        }
        return new String(c);
    }

    private static void addedToken(ArrayNode at, int id, String content) {
        ObjectNode a = at.addObject();
        a.put("id", id);
        a.put("content", content);
        a.put("single_word", false);
        a.put("lstrip", false);
        a.put("rstrip", false);
        a.put("normalized", false);
        a.put("special", true);
    }
}
