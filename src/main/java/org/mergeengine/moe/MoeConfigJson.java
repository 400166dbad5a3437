package org.mergeengine.moe;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.TreeMap;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.Json;

/**
 * The output's config.json: the base's, with the keys the MoE class needs. Mixtral, Qwen MoE and
 * Qwen3 MoE are written as transformers writes them (keys sorted); DeepSeek MoE keeps the base's
 * key order with its keys appended, as mergekit-moe writes that file by hand.
 */
public final class MoeConfigJson {
    private MoeConfigJson() {}

    /**
     * @param experts routed experts E, {@code perToken} experts per token k, {@code shared} shared experts
     * @param outDType the output dtype, or null (then the base's stays)
     */
    public static ObjectNode of(MoeArchitecture arch, ObjectNode base, int experts, int perToken, int shared, DType outDType) {
        ObjectNode c = base.deepCopy();
        int layers = c.path("num_hidden_layers").asInt();
        long inter = c.path("intermediate_size").asLong();
        String baseDtype = c.hasNonNull("dtype") ? c.get("dtype").asText() : c.hasNonNull("torch_dtype") ? c.get("torch_dtype").asText() : null;
        String dtype = outDType != null ? outDType.torchName() : baseDtype;
        ArrayNode archs = Json.MAPPER.createArrayNode();
        switch (arch) {
            case MIXTRAL -> {
                archs.add("MixtralForCausalLM");
                c.set("architectures", archs);
                c.put("model_type", "mixtral");
                c.put("num_local_experts", experts);
                c.put("num_experts_per_tok", perToken);
                c.putNull("sliding_window");
                c.put("output_router_logits", false);
                c.put("router_aux_loss_coef", 0.001);
                c.put("router_jitter_noise", 0.0);
                return sorted(c, dtype);
            }
            case QWEN -> {
                archs.add("Qwen2MoeForCausalLM");
                c.set("architectures", archs);
                c.put("model_type", "qwen2_moe");
                c.put("num_experts", experts);
                c.put("num_experts_per_tok", perToken);
                c.put("decoder_sparse_step", 1);
                c.put("norm_topk_prob", true);
                c.putNull("sliding_window");
                c.put("use_sliding_window", false);
                c.put("moe_intermediate_size", inter);
                c.put("shared_expert_intermediate_size", inter);
                if (!c.has("qkv_bias")) c.put("qkv_bias", true);
                c.set("mlp_only_layers", Json.MAPPER.createArrayNode());
                if (!c.has("max_window_layers")) c.put("max_window_layers", 28);
                ArrayNode types = Json.MAPPER.createArrayNode();
                for (int l = 0; l < layers; l++) types.add("full_attention");
                c.set("layer_types", types);
                c.put("output_router_logits", false);
                c.put("router_aux_loss_coef", 0.001);
                return sorted(c, dtype);
            }
            case QWEN3 -> {
                archs.add("Qwen3MoeForCausalLM");
                c.set("architectures", archs);
                c.put("model_type", "qwen3_moe");
                c.put("num_local_experts", experts);
                c.put("num_experts_per_tok", perToken);
                c.put("decoder_sparse_step", 1);
                c.put("norm_topk_prob", true);
                c.put("moe_intermediate_size", inter);
                c.set("mlp_only_layers", Json.MAPPER.createArrayNode());
                c.put("output_router_logits", false);
                c.put("router_aux_loss_coef", 0.001);
                return sorted(c, dtype);
            }
            case DEEPSEEK -> {
                archs.add("DeepseekForCausalLM");
                c.set("architectures", archs);
                c.put("model_type", "deepseek");
                c.put("n_routed_experts", experts);
                if (shared > 0) c.put("n_shared_experts", shared);
                else c.putNull("n_shared_experts");
                c.put("num_experts_per_tok", perToken);
                c.put("first_k_dense_replace", 0);
                c.put("moe_layer_freq", 1);
                c.put("scoring_func", "softmax");
                c.put("norm_topk_prob", true);
                c.put("moe_intermediate_size", inter);
                ObjectNode auto = c.putObject("auto_map");
                String repo = "deepseek-ai/deepseek-moe-16b-base--";
                auto.put("AutoConfig", repo + "configuration_deepseek.DeepseekConfig");
                auto.put("AutoModel", repo + "modeling_deepseek.DeepseekModel");
                auto.put("AutoModelForCausalLM", repo + "modeling_deepseek.DeepseekForCausalLM");
                if (outDType != null) {
                    c.remove("torch_dtype");
                    c.put("torch_dtype", outDType.torchName());
                }
                return c;
            }
            default -> throw new IllegalStateException();
        }
    }

    private static ObjectNode sorted(ObjectNode c, String dtype) {
        c.remove("torch_dtype");
        if (dtype != null) c.put("dtype", dtype);
        TreeMap<String, JsonNode> m = new TreeMap<>();
        for (Iterator<String> it = c.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            m.put(k, c.get(k));
        }
        ObjectNode out = Json.MAPPER.createObjectNode();
        m.forEach(out::set);
        return out;
    }

    /** The keys whose values differ between two configs (for --dry-run). */
    public static List<String> changedKeys(ObjectNode before, ObjectNode after) {
        List<String> out = new ArrayList<>();
        for (Iterator<String> it = after.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (!after.get(k).equals(before.get(k))) out.add(k + ": " + after.get(k));
        }
        return out;
    }
}
