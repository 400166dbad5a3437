package org.mergeengine.moe;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The order in which each output draws its experts' noise (spec §8) and the names it writes. */
class MoeLayoutTest {
    static String order(MoeLayout l, int n) {
        StringBuilder sb = new StringBuilder();
        for (MoeLayout.Piece p : l.noiseOrder().subList(0, n)) sb.append(p.layer()).append(p.expert()).append(p.proj().charAt(0)).append(' ');
        return sb.toString().trim();
    }

    @Test
    void noiseIsDrawnInEachOutputsOwnOrder() {
        Set<String> none = Set.of();
        assertEquals("00g 00d 00u 01g 01d 01u 10g", order(MoeLayout.of(MoeArchitecture.MIXTRAL, 2, 2, 0, none, 4, 2, 32), 7));
        assertEquals("00g 00u 00d 01g 01u 01d 10g", order(MoeLayout.of(MoeArchitecture.QWEN3, 2, 2, 0, none, 4, 2, 32), 7));
        assertEquals("00u 01u 02u 00g 01g 02g 00d", order(MoeLayout.of(MoeArchitecture.DEEPSEEK, 2, 2, 1, none, 4, 2, 32), 7));
        assertEquals("00d 01d 02d 00g 01g 02g 00u", order(MoeLayout.of(MoeArchitecture.QWEN, 2, 2, 1, none, 4, 2, 32), 7));
    }

    @Test
    void qwenMoeKeepsStoredBiasesAndSynthesisesMissingOnes() {
        MoeLayout withBias = MoeLayout.of(MoeArchitecture.QWEN, 1, 2, 1, Set.of("model.layers.0.self_attn.q_proj.bias", "lm_head.weight"), 4, 2, 32);
        List<MoeLayout.OutTensor> t = withBias.tensors();
        MoeLayout.OutTensor q = t.stream().filter(x -> x.name().equals("model.layers.0.self_attn.q_proj.bias")).findFirst().orElseThrow();
        assertEquals(MoeLayout.Kind.BASE, q.kind());
        MoeLayout.OutTensor k = t.stream().filter(x -> x.name().equals("model.layers.0.self_attn.k_proj.bias")).findFirst().orElseThrow();
        assertEquals(MoeLayout.Kind.ZERO_BIAS, k.kind());
        assertEquals(16, k.length());
        assertTrue(t.stream().anyMatch(x -> x.name().equals("lm_head.weight")));
        assertFalse(MoeLayout.of(MoeArchitecture.QWEN, 1, 2, 1, Set.of(), 4, 2, 32).tensors().stream().anyMatch(x -> x.name().equals("lm_head.weight")),
                "a tied base has no lm_head, and neither has the output");
        assertEquals("model.layers.0.mlp.shared_expert_gate.weight", t.get(t.size() - 1).name());
    }
}
