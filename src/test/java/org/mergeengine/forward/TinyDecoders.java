package org.mergeengine.forward;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.tensor.Convert;

/**
 * Tiny decoders of the four families, written to disk with random weights, and kept in memory
 * (as the exact stored values, in double) for the test's own reference forward pass.
 */
final class TinyDecoders {
    /** A model's shape and the features that distinguish the families. */
    record Spec(String type, int hidden, int layers, int heads, int kvHeads, Integer headDim, int inter, int vocab,
                DType dtype, boolean tied, boolean qkvBias, boolean qkNorm, ObjectNode ropeScaling, double ropeTheta,
                Integer slidingWindow) {
        int hd() {
            return headDim != null ? headDim : hidden / heads;
        }
    }

    /** A written model: its folder, its config and every tensor's stored values. */
    record Model(Path dir, Spec spec, Map<String, double[]> w) {
        double[] get(String name) {
            double[] v = w.get(name);
            if (v == null) throw new IllegalArgumentException("no tensor " + name);
            return v;
        }
    }

    private TinyDecoders() {}

    static ObjectNode scaling(String type, double factor) {
        ObjectNode s = Json.MAPPER.createObjectNode();
        s.put("rope_type", type);
        s.put("factor", factor);
        if (type.equals("llama3")) {
            s.put("low_freq_factor", 1.0);
            s.put("high_freq_factor", 4.0);
            s.put("original_max_position_embeddings", 100);
        }
        return s;
    }

    static Spec llama() {
        return new Spec("llama", 32, 3, 4, 2, null, 48, 40, DType.BF16, false, false, false, scaling("llama3", 8.0), 10000.0, null);
    }

    static Spec mistral() {
        return new Spec("mistral", 32, 2, 4, 1, null, 40, 40, DType.F16, false, false, false, null, 10000.0, 3);
    }

    static Spec qwen2() {
        return new Spec("qwen2", 24, 2, 6, 2, null, 36, 40, DType.F32, true, true, false, scaling("linear", 2.0), 1000000.0, null);
    }

    static Spec qwen3() {
        return new Spec("qwen3", 32, 2, 4, 2, 16, 48, 40, DType.BF16, true, false, true, null, 1000000.0, null);
    }

    static Model write(Path dir, Spec s, long seed) throws Exception {
        Files.createDirectories(dir);
        SplittableRandom rnd = new SplittableRandom(seed);
        Map<String, double[]> w = new LinkedHashMap<>();
        List<SafetensorsWriter.TensorData> data = new ArrayList<>();
        int h = s.hidden, qd = s.heads * s.hd(), kd = s.kvHeads * s.hd();
        add(data, w, s, rnd, "model.embed_tokens.weight", 1.0, 0, s.vocab, h);
        for (int l = 0; l < s.layers; l++) {
            String p = "model.layers." + l + ".";
            add(data, w, s, rnd, p + "input_layernorm.weight", 0.2, 1, h);
            add(data, w, s, rnd, p + "self_attn.q_proj.weight", 1 / Math.sqrt(h) * 1.5, 0, qd, h);
            add(data, w, s, rnd, p + "self_attn.k_proj.weight", 1 / Math.sqrt(h) * 1.5, 0, kd, h);
            add(data, w, s, rnd, p + "self_attn.v_proj.weight", 1 / Math.sqrt(h), 0, kd, h);
            if (s.qkvBias) {
                add(data, w, s, rnd, p + "self_attn.q_proj.bias", 0.5, 0, qd);
                add(data, w, s, rnd, p + "self_attn.k_proj.bias", 0.5, 0, kd);
                add(data, w, s, rnd, p + "self_attn.v_proj.bias", 0.5, 0, kd);
            }
            if (s.qkNorm) {
                add(data, w, s, rnd, p + "self_attn.q_norm.weight", 0.3, 1, s.hd());
                add(data, w, s, rnd, p + "self_attn.k_norm.weight", 0.3, 1, s.hd());
            }
            add(data, w, s, rnd, p + "self_attn.o_proj.weight", 1 / Math.sqrt(qd), 0, h, qd);
            add(data, w, s, rnd, p + "post_attention_layernorm.weight", 0.2, 1, h);
            add(data, w, s, rnd, p + "mlp.gate_proj.weight", 1 / Math.sqrt(h), 0, s.inter, h);
            add(data, w, s, rnd, p + "mlp.up_proj.weight", 1 / Math.sqrt(h), 0, s.inter, h);
            add(data, w, s, rnd, p + "mlp.down_proj.weight", 1 / Math.sqrt(s.inter), 0, h, s.inter);
        }
        add(data, w, s, rnd, "model.norm.weight", 0.2, 1, h);
        if (!s.tied) add(data, w, s, rnd, "lm_head.weight", 1 / Math.sqrt(h) * 3, 0, s.vocab, h);
        SafetensorsWriter.writeFile(dir.resolve("model.safetensors"), data);
        Json.write(dir.resolve("config.json"), config(s));
        return new Model(dir, s, w);
    }

    static ObjectNode config(Spec s) {
        ObjectNode c = Json.MAPPER.createObjectNode();
        String arch = switch (s.type) {
            case "llama" -> "LlamaForCausalLM";
            case "mistral" -> "MistralForCausalLM";
            case "qwen2" -> "Qwen2ForCausalLM";
            default -> "Qwen3ForCausalLM";
        };
        c.putArray("architectures").add(arch);
        c.put("model_type", s.type);
        c.put("hidden_size", s.hidden);
        c.put("intermediate_size", s.inter);
        c.put("num_hidden_layers", s.layers);
        c.put("num_attention_heads", s.heads);
        c.put("num_key_value_heads", s.kvHeads);
        if (s.headDim != null) c.put("head_dim", s.headDim);
        c.put("vocab_size", s.vocab);
        c.put("rms_norm_eps", 1e-5);
        c.put("rope_theta", s.ropeTheta);
        if (s.ropeScaling != null) c.set("rope_scaling", s.ropeScaling);
        c.put("hidden_act", "silu");
        c.put("max_position_embeddings", 64);
        c.put("tie_word_embeddings", s.tied);
        if (s.slidingWindow != null) c.put("sliding_window", s.slidingWindow);
        else c.putNull("sliding_window");
        c.put("torch_dtype", s.dtype.torchName());
        return c;
    }

    /** A tensor of N(center, scale²) values, rounded to the model's dtype; the rounded values are what the reference uses. */
    private static void add(List<SafetensorsWriter.TensorData> data, Map<String, double[]> w, Spec s, SplittableRandom rnd,
                            String name, double scale, double center, long... shape) {
        int n = 1;
        for (long d : shape) n *= (int) d;
        float[] f = new float[n];
        double[] d = new double[n];
        for (int i = 0; i < n; i++) {
            f[i] = Convert.roundTo(s.dtype, (float) (center + scale * gaussian(rnd)));
            d[i] = f[i];
        }
        data.add(Convert.tensorData(name, s.dtype, shape, f));
        w.put(name, d);
    }

    private static double gaussian(SplittableRandom rnd) {
        double u = rnd.nextDouble(1e-12, 1.0), v = rnd.nextDouble();
        return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    }
}
