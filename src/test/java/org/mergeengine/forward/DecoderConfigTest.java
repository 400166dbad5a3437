package org.mergeengine.forward;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.FormatException;
import org.mergeengine.formats.Json;

/** config.json readings the tiny-model tests do not reach: transformers 5's rope_parameters, sliding windows, refusals. */
class DecoderConfigTest {
    private static final Path FILE = Path.of("m", "config.json");

    private static ObjectNode base(String type) {
        return TinyDecoders.config(new TinyDecoders.Spec(type, 64, 4, 4, 2, null, 96, 50, DType.F32,
                false, false, false, null, 10000.0, null));
    }

    @Test
    void ropeParametersReadLikeRopeScaling() {
        ObjectNode old = base("llama");
        old.put("rope_theta", 500000.0);
        old.set("rope_scaling", TinyDecoders.scaling("llama3", 8.0));
        ObjectNode v5 = base("llama");
        v5.remove("rope_theta");
        ObjectNode params = TinyDecoders.scaling("llama3", 8.0);
        params.put("rope_theta", 500000.0);
        v5.set("rope_parameters", params);
        float[] a = DecoderConfig.parse(old, FILE).rope().invFreq(), b = DecoderConfig.parse(v5, FILE).rope().invFreq();
        assertArrayEquals(a, b);
        assertEquals("llama3", DecoderConfig.parse(v5, FILE).rope().type());
        // head dim 16: pair 0 turns at 1 rad per position whatever the scaling; the slowest pair is divided by the factor.
        float[] plain = DecoderConfig.parse(base("llama"), FILE).rope().invFreq();
        assertEquals(1f, a[0]);
        assertEquals(Math.pow(500000.0, -14.0 / 16) / 8, a[7], 1e-6 * a[7]);
        assertEquals(Math.pow(10000.0, -14.0 / 16), plain[7], 1e-6 * plain[7]);
    }

    @Test
    void unsupportedRopeTypesAndActivationsAreRefusedByName() {
        ObjectNode c = base("qwen2");
        ObjectNode y = Json.MAPPER.createObjectNode();
        y.put("rope_type", "yarn");
        y.put("factor", 4.0);
        c.set("rope_scaling", y);
        FormatException e = assertThrows(FormatException.class, () -> DecoderConfig.parse(c, FILE));
        assertTrue(e.getMessage().contains("rope type 'yarn'") && e.getMessage().contains("rope_scaling"), e.getMessage());
        ObjectNode g = base("llama");
        g.put("hidden_act", "gelu");
        assertTrue(assertThrows(FormatException.class, () -> DecoderConfig.parse(g, FILE)).getMessage().contains("hidden_act 'gelu'"));
        ObjectNode h = base("llama");
        h.put("num_key_value_heads", 3);
        assertTrue(assertThrows(FormatException.class, () -> DecoderConfig.parse(h, FILE)).getMessage().contains("num_key_value_heads 3"));
    }

    @Test
    void slidingWindowsPerFamily() {
        ObjectNode m = base("mistral");
        m.put("sliding_window", 16);
        DecoderConfig mc = DecoderConfig.parse(m, FILE);
        for (int l = 0; l < 4; l++) assertTrue(mc.sliding(l));
        assertEquals(16, mc.slidingWindow());

        ObjectNode q = base("qwen2");
        q.put("sliding_window", 16);
        q.put("max_window_layers", 2);
        assertFalse(DecoderConfig.parse(q, FILE).sliding(3), "Qwen2 slides only with use_sliding_window");
        q.put("use_sliding_window", true);
        DecoderConfig qc = DecoderConfig.parse(q, FILE);
        assertFalse(qc.sliding(1));
        assertTrue(qc.sliding(2) && qc.sliding(3));
        q.putArray("layer_types").add("sliding_attention").add("full_attention").add("full_attention").add("sliding_attention");
        qc = DecoderConfig.parse(q, FILE);
        assertTrue(qc.sliding(0) && !qc.sliding(1) && !qc.sliding(2) && qc.sliding(3));

        ObjectNode l = base("llama");
        l.put("sliding_window", 16);
        assertFalse(DecoderConfig.parse(l, FILE).sliding(0), "Llama has no sliding window");
    }
}
