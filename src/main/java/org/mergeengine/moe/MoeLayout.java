package org.mergeengine.moe;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Which tensors an MoE checkpoint holds, in mergekit-moe's write order, and where each comes
 * from: the base (attention, norms, embeddings), the experts' MLPs (fused into one
 * {@code [E, rows, cols]} tensor for the transformers-v5 layouts, one tensor per expert
 * otherwise), routers and zero biases (computed). Also the order in which expert tensors draw
 * their noise, which is not always the write order.
 */
public final class MoeLayout {
    public enum Kind { BASE, EXPERTS, ROUTER, SHARED_ROUTER, ZERO_BIAS }

    /**
     * One MLP matrix of one expert. {@code expert} counts routed experts 0..E-1, then shared
     * experts from E.
     */
    public record Piece(int expert, int layer, String proj) {
        public String sourceName() {
            return "model.layers." + layer + ".mlp." + proj + ".weight";
        }
    }

    /**
     * An output tensor. BASE: copied from the base tensor {@code baseSource} ({@code optional}:
     * skipped when the base lacks it). EXPERTS: {@code pieces} concatenated (one piece: a copy).
     * ROUTER / SHARED_ROUTER: layer {@code layer}'s gate rows. ZERO_BIAS: {@code length} zeros.
     */
    public record OutTensor(String name, Kind kind, String baseSource, boolean optional, List<Piece> pieces, int layer, long length) {
        static OutTensor base(String name, boolean optional) {
            return new OutTensor(name, Kind.BASE, name, optional, List.of(), -1, 0);
        }
    }

    private final List<OutTensor> tensors;
    private final List<Piece> noiseOrder;

    private MoeLayout(List<OutTensor> tensors, List<Piece> noiseOrder) {
        this.tensors = List.copyOf(tensors);
        this.noiseOrder = List.copyOf(noiseOrder);
    }

    public List<OutTensor> tensors() { return tensors; }

    /** Every expert matrix in the order mergekit-moe draws its noise (per layer, per expert, per projection). */
    public List<Piece> noiseOrder() { return noiseOrder; }

    /**
     * @param layers the base's num_hidden_layers
     * @param experts routed experts E
     * @param shared shared experts (0 or 1)
     * @param baseTensors names of the base's tensors (optional weights and biases are looked up there)
     * @param heads attention heads, {@code kvHeads} key/value heads, {@code hidden} hidden size (for Qwen MoE's zero biases)
     */
    public static MoeLayout of(MoeArchitecture arch, int layers, int experts, int shared, Set<String> baseTensors, int heads, int kvHeads, int hidden) {
        List<OutTensor> out = new ArrayList<>();
        List<Piece> noise = new ArrayList<>();
        String[] attn = {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                "self_attn.o_proj.weight", "post_attention_layernorm.weight"};
        switch (arch) {
            case MIXTRAL, QWEN3 -> {
                String[] perLayer = arch == MoeArchitecture.MIXTRAL ? attn
                        : new String[] {"input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.k_norm.weight", "self_attn.k_proj.weight",
                                "self_attn.q_norm.weight", "self_attn.q_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight"};
                out.add(OutTensor.base("model.embed_tokens.weight", false));
                for (int l = 0; l < layers; l++) for (String s : perLayer) out.add(OutTensor.base("model.layers." + l + "." + s, false));
                out.add(OutTensor.base("model.norm.weight", false));
                out.add(OutTensor.base("lm_head.weight", true));
                String[] draw = arch == MoeArchitecture.MIXTRAL ? new String[] {"gate_proj", "down_proj", "up_proj"} : new String[] {"gate_proj", "up_proj", "down_proj"};
                for (int l = 0; l < layers; l++) {
                    List<Piece> gateUp = new ArrayList<>(), down = new ArrayList<>();
                    for (int e = 0; e < experts; e++) {
                        gateUp.add(new Piece(e, l, "gate_proj"));
                        gateUp.add(new Piece(e, l, "up_proj"));
                        down.add(new Piece(e, l, "down_proj"));
                        for (String p : draw) noise.add(new Piece(e, l, p));
                    }
                    String pre = "model.layers." + l + ".mlp.experts.";
                    out.add(new OutTensor(pre + "gate_up_proj", Kind.EXPERTS, null, false, gateUp, l, 0));
                    out.add(new OutTensor(pre + "down_proj", Kind.EXPERTS, null, false, down, l, 0));
                }
                for (int l = 0; l < layers; l++) out.add(new OutTensor("model.layers." + l + ".mlp.gate.weight", Kind.ROUTER, null, false, List.of(), l, 0));
            }
            case DEEPSEEK -> {
                out.add(OutTensor.base("model.embed_tokens.weight", false));
                for (int l = 0; l < layers; l++) {
                    for (String s : attn) out.add(OutTensor.base("model.layers." + l + "." + s, false));
                    for (String p : new String[] {"up_proj", "gate_proj", "down_proj"}) {
                        for (int e = 0; e < experts + shared; e++) {
                            Piece pc = new Piece(e, l, p);
                            String name = "model.layers." + l + ".mlp." + (e < experts ? "experts." + e : "shared_experts") + "." + p + ".weight";
                            out.add(new OutTensor(name, Kind.EXPERTS, null, false, List.of(pc), l, 0));
                            noise.add(pc);
                        }
                    }
                }
                out.add(OutTensor.base("model.norm.weight", false));
                out.add(OutTensor.base("lm_head.weight", true));
                for (int l = 0; l < layers; l++) out.add(new OutTensor("model.layers." + l + ".mlp.gate.weight", Kind.ROUTER, null, false, List.of(), l, 0));
            }
            case QWEN -> {
                int headDim = hidden / heads;
                out.add(OutTensor.base("model.embed_tokens.weight", false));
                for (int l = 0; l < layers; l++) {
                    String pre = "model.layers." + l + ".";
                    out.add(OutTensor.base(pre + "input_layernorm.weight", false));
                    for (String p : new String[] {"down_proj", "gate_proj", "up_proj"}) {
                        for (int e = 0; e < experts + shared; e++) {
                            Piece pc = new Piece(e, l, p);
                            out.add(new OutTensor(pre + "mlp." + (e < experts ? "experts." + e : "shared_expert") + "." + p + ".weight",
                                    Kind.EXPERTS, null, false, List.of(pc), l, 0));
                            noise.add(pc);
                        }
                    }
                    out.add(OutTensor.base(pre + "post_attention_layernorm.weight", false));
                    for (String proj : new String[] {"k", "o", "q", "v"}) {
                        if (!proj.equals("o")) {
                            String bias = pre + "self_attn." + proj + "_proj.bias";
                            if (baseTensors.contains(bias)) out.add(OutTensor.base(bias, false));
                            else out.add(new OutTensor(bias, Kind.ZERO_BIAS, null, false, List.of(), l, (long) (proj.equals("q") ? heads : kvHeads) * headDim));
                        }
                        out.add(OutTensor.base(pre + "self_attn." + proj + "_proj.weight", false));
                    }
                }
                out.add(OutTensor.base("model.norm.weight", false));
                out.add(OutTensor.base("lm_head.weight", true));
                for (int l = 0; l < layers; l++) {
                    out.add(new OutTensor("model.layers." + l + ".mlp.gate.weight", Kind.ROUTER, null, false, List.of(), l, 0));
                    out.add(new OutTensor("model.layers." + l + ".mlp.shared_expert_gate.weight", Kind.SHARED_ROUTER, null, false, List.of(), l, 0));
                }
            }
            default -> throw new IllegalStateException();
        }
        out.removeIf(t -> t.optional() && !baseTensors.contains(t.baseSource()));
        return new MoeLayout(out, noise);
    }
}
