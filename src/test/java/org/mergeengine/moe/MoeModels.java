package org.mergeengine.moe;

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
import org.mergeengine.tools.SyntheticModel;

/** Tiny dense decoders of the families mergekit-moe takes (Llama, Mistral, Qwen2, Qwen3), with random weights and a tokenizer. */
final class MoeModels {
    static final int HIDDEN = 32, LAYERS = 2, HEADS = 4, KV = 2, INTER = 48, VOCAB = 100;

    private MoeModels() {}

    /** Writes a model and returns its tensors' stored values (as floats, after rounding to {@code dt}). */
    static Map<String, float[]> write(Path dir, String type, DType dt, long seed) throws Exception {
        Files.createDirectories(dir);
        SplittableRandom rnd = new SplittableRandom(seed);
        Map<String, long[]> shapes = new LinkedHashMap<>();
        int hd = HIDDEN / HEADS;
        shapes.put("model.embed_tokens.weight", new long[] {VOCAB, HIDDEN});
        for (int l = 0; l < LAYERS; l++) {
            String p = "model.layers." + l + ".";
            shapes.put(p + "input_layernorm.weight", new long[] {HIDDEN});
            shapes.put(p + "self_attn.q_proj.weight", new long[] {HEADS * hd, HIDDEN});
            shapes.put(p + "self_attn.k_proj.weight", new long[] {KV * hd, HIDDEN});
            shapes.put(p + "self_attn.v_proj.weight", new long[] {KV * hd, HIDDEN});
            shapes.put(p + "self_attn.o_proj.weight", new long[] {HIDDEN, HEADS * hd});
            if (type.equals("qwen2")) {
                shapes.put(p + "self_attn.q_proj.bias", new long[] {HEADS * hd});
                shapes.put(p + "self_attn.k_proj.bias", new long[] {KV * hd});
                shapes.put(p + "self_attn.v_proj.bias", new long[] {KV * hd});
            }
            if (type.equals("qwen3")) {
                shapes.put(p + "self_attn.q_norm.weight", new long[] {hd});
                shapes.put(p + "self_attn.k_norm.weight", new long[] {hd});
            }
            shapes.put(p + "post_attention_layernorm.weight", new long[] {HIDDEN});
            shapes.put(p + "mlp.gate_proj.weight", new long[] {INTER, HIDDEN});
            shapes.put(p + "mlp.up_proj.weight", new long[] {INTER, HIDDEN});
            shapes.put(p + "mlp.down_proj.weight", new long[] {HIDDEN, INTER});
        }
        shapes.put("model.norm.weight", new long[] {HIDDEN});
        shapes.put("lm_head.weight", new long[] {VOCAB, HIDDEN});
        Map<String, float[]> values = new LinkedHashMap<>();
        List<SafetensorsWriter.TensorData> data = new ArrayList<>();
        for (Map.Entry<String, long[]> e : shapes.entrySet()) {
            long n = 1;
            for (long d : e.getValue()) n *= d;
            float[] v = new float[(int) n];
            boolean norm = e.getKey().contains("norm");
            for (int i = 0; i < v.length; i++) v[i] = Convert.roundTo(dt, norm ? 1f + (float) rnd.nextGaussian() * 0.05f : (float) rnd.nextGaussian() * 0.2f);
            values.put(e.getKey(), v);
            data.add(Convert.tensorData(e.getKey(), dt, e.getValue(), v));
        }
        SafetensorsWriter.writeFile(dir.resolve("model.safetensors"), data);
        ObjectNode c = Json.MAPPER.createObjectNode();
        String arch = switch (type) {
            case "llama" -> "LlamaForCausalLM";
            case "mistral" -> "MistralForCausalLM";
            case "qwen2" -> "Qwen2ForCausalLM";
            default -> "Qwen3ForCausalLM";
        };
        c.putArray("architectures").add(arch);
        c.put("model_type", type);
        c.put("hidden_size", HIDDEN);
        c.put("intermediate_size", INTER);
        c.put("num_hidden_layers", LAYERS);
        c.put("num_attention_heads", HEADS);
        c.put("num_key_value_heads", KV);
        c.put("head_dim", hd);
        c.put("vocab_size", VOCAB);
        c.put("max_position_embeddings", 256);
        c.put("rms_norm_eps", 1e-6);
        c.put("rope_theta", 10000.0);
        c.put("hidden_act", "silu");
        c.put("tie_word_embeddings", false);
        if (type.equals("mistral")) c.put("sliding_window", 64);
        c.put("torch_dtype", dt.torchName());
        c.put("bos_token_id", 1);
        c.put("eos_token_id", 2);
        Json.write(dir.resolve("config.json"), c);
        SyntheticModel.writeTokenizer(dir, VOCAB, List.of());
        return values;
    }
}
