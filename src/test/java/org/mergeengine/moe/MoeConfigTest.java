package org.mergeengine.moe;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.ModelRef;
import org.mergeengine.formats.DType;

/** mergekit-moe's schema, defaults and rules, and the output-architecture choice. */
class MoeConfigTest {
    static String msg(Runnable r) {
        return assertThrows(ConfigException.class, r::run).getMessage();
    }

    @Test
    void defaultsAndObjectReferencesAsMergekitReadsThem() {
        MoeConfig c = MoeConfig.parse("base_model: {model: {path: org/base, revision: v1}, lora: ad}\nexperts:\n  - source_model: a\n"
                + "    positive_prompts: [x]\n    experts_per_tok: 3\n  - source_model: b@main\n    positive_prompts: [y]\nshared_experts: []\n");
        assertEquals("hidden", c.gateMode());
        assertEquals(2, c.expertsPerToken());
        assertNull(c.dtype());
        assertEquals(new ModelRef("org/base", "v1", "ad", null), c.baseModel());
        assertEquals("main", c.experts().get(1).sourceModel().revision());
        assertTrue(c.sharedExperts().isEmpty());
        assertEquals(1, c.unknownKeys().size());
        assertTrue(c.unknownKeys().get(0).startsWith("experts[0].experts_per_tok: unknown key, ignored"), c.unknownKeys().get(0));
        assertEquals(DType.BF16, MoeConfig.parse("base_model: b\ndtype: torch.bfloat16\nexperts: []\n").dtype());
    }

    @Test
    void typeMistakesNameTheirPath() {
        assertTrue(msg(() -> MoeConfig.parse("gate_mode: random\nexperts: []\n")).startsWith("base_model: required"));
        assertTrue(msg(() -> MoeConfig.parse("base_model: b\n")).startsWith("experts: required"));
        assertTrue(msg(() -> MoeConfig.parse("base_model: b\nexperts:\n  - source_model: a\n    positive_prompts: hello\n"))
                .startsWith("experts[0].positive_prompts: must be a list of strings"));
        assertTrue(msg(() -> MoeConfig.parse("base_model: b\nexperts_per_token: 1.5\nexperts: []\n")).startsWith("experts_per_token: must be an integer"));
        assertTrue(msg(() -> MoeConfig.parse("base_model: b\nexperts:\n  - source_model: a\n    noise_scale: big\n")).startsWith("experts[0].noise_scale"));
    }

    @Test
    void randomModeSkipsThePromptRulesButUniformRandomDoesNot() {
        MoeConfig.parse("base_model: b\ngate_mode: random\nexperts:\n  - source_model: a\n  - source_model: a\n").validate(false);
        MoeConfig.parse("base_model: b\ngate_mode: random\nexperts_per_token: 1\nexperts:\n  - source_model: a\n").validate(false);
        String m = msg(() -> MoeConfig.parse("base_model: b\ngate_mode: uniform_random\nexperts:\n  - source_model: a\n  - source_model: c\n").validate(false));
        assertTrue(m.startsWith("experts[0].positive_prompts: Expert 0 has no positive prompts."), m);
        assertTrue(msg(() -> MoeConfig.parse("base_model: b\nexperts_per_token: 0\ngate_mode: random\nexperts:\n  - source_model: a\n").validate(false))
                .startsWith("experts_per_token: Experts per token must be >= 1"));
        MoeConfig same = MoeConfig.parse("base_model: b\nexperts:\n  - {source_model: a, positive_prompts: [x]}\n  - {source_model: a, positive_prompts: [y]}\n");
        assertTrue(msg(() -> same.validate(false)).contains("--i-understand-this-is-not-useful-without-training"));
        same.validate(true);
        MoeConfig negOnly = MoeConfig.parse("base_model: b\nexperts:\n  - {source_model: a, positive_prompts: [x]}\n"
                + "  - {source_model: c, positive_prompts: [x], negative_prompts: [z]}\n");
        negOnly.validate(false); // different negatives make the prompts differ
    }

    static Map<ModelRef, String> types(MoeConfig c, String... t) {
        Map<ModelRef, String> m = new LinkedHashMap<>();
        List<ModelRef> refs = c.models();
        for (int i = 0; i < refs.size(); i++) m.put(refs.get(i), t[Math.min(i, t.length - 1)]);
        return m;
    }

    @Test
    void outputArchitectureFollowsMergekitsRegistry() {
        MoeConfig plain = MoeConfig.parse("base_model: b\ngate_mode: random\nexperts:\n  - source_model: a\n  - source_model: c\n");
        assertEquals(MoeArchitecture.MIXTRAL, MoeArchitecture.choose(plain, types(plain, "mistral")).arch());
        assertEquals(MoeArchitecture.QWEN3, MoeArchitecture.choose(plain, types(plain, "qwen3")).arch());
        assertTrue(msg(() -> MoeArchitecture.choose(plain, types(plain, "qwen2"))).contains("Qwen MoE: Qwen MoE requires exactly one shared expert"));
        MoeConfig shared = MoeConfig.parse("base_model: b\ngate_mode: random\nexperts:\n  - source_model: a\n  - source_model: c\nshared_experts:\n  - source_model: b\n");
        MoeArchitecture.Choice both = MoeArchitecture.choose(shared, types(shared, "llama"));
        assertEquals(MoeArchitecture.DEEPSEEK, both.arch());
        assertTrue(both.warnings().get(0).contains("Multiple output architectures found"));
        assertEquals(MoeArchitecture.QWEN, MoeArchitecture.choose(shared, types(shared, "qwen2")).arch());
        MoeConfig q = MoeConfig.parse("base_model: b\narchitecture: QWEN\ngate_mode: random\nexperts:\n  - source_model: a\n  - source_model: c\n"
                + "shared_experts:\n  - source_model: b\n");
        assertEquals(MoeArchitecture.QWEN, MoeArchitecture.choose(q, types(q, "llama")).arch(), "'qwen' matches Qwen MoE and Qwen3 MoE; Qwen MoE takes Llama");
        MoeConfig mixed = MoeConfig.parse("base_model: b\ngate_mode: random\nexperts:\n  - source_model: a\n  - source_model: c\n");
        assertTrue(msg(() -> MoeArchitecture.choose(mixed, types(mixed, "llama", "mistral"))).contains("same architecture"));
        MoeConfig prompted = MoeConfig.parse("base_model: b\ngate_mode: cheap_embed\nexperts:\n  - {source_model: a, positive_prompts: [x]}\n"
                + "  - {source_model: c, positive_prompts: [y]}\nshared_experts:\n  - {source_model: b, positive_prompts: [z]}\n");
        assertEquals(MoeArchitecture.QWEN, MoeArchitecture.choose(prompted, types(prompted, "llama")).arch(), "DeepSeek takes no gated shared expert");
    }
}
