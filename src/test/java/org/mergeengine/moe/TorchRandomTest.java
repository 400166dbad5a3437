package org.mergeengine.moe;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.InputStream;
import org.junit.jupiter.api.Test;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.Json;
import org.mergeengine.tensor.Convert;

/** The port of torch's generator against draws torch made (fixture from scripts/torch_random_fixture.py) and the spec's figures. */
class TorchRandomTest {
    static JsonNode fixture() throws Exception {
        try (InputStream in = TorchRandomTest.class.getResourceAsStream("/moe/torch_random.json")) {
            return Json.MAPPER.readTree(in);
        }
    }

    static int[] bits(float[] v) {
        int[] b = new int[v.length];
        for (int i = 0; i < v.length; i++) b[i] = Float.floatToRawIntBits(v[i]);
        return b;
    }

    static int[] expected(JsonNode bits) {
        int[] b = new int[bits.size()];
        for (int i = 0; i < b.length; i++) b[i] = (int) bits.get(i).asLong();
        return b;
    }

    static float[] bf16Normals(TorchRandom rng, int n) {
        TorchRandom.NormalStream s = new TorchRandom.NormalStream(rng, n, true);
        float[] out = new float[n];
        for (int i = 0; i < n; i++) out[i] = Convert.roundTo(DType.BF16, s.get(i));
        rng.skip(TorchRandom.normalDraws(n, true));
        return out;
    }

    @Test
    void mersenneTwisterAndUniformsMatchTheSpec() {
        TorchRandom r = new TorchRandom(42);
        assertEquals(1608637542L, Integer.toUnsignedLong(r.next32()));
        assertEquals(3421126067L, Integer.toUnsignedLong(r.next32()));
        assertEquals(4083286876L, Integer.toUnsignedLong(r.next32()));
        assertEquals(787846414L, Integer.toUnsignedLong(r.next32()));
        float[] u = new TorchRandom(42).rand(4);
        assertEquals(0.882269263f, u[0], 1e-8f);
        assertEquals(0.959305644f, u[3], 1e-8f);
        float[] n = new TorchRandom(42).randn(32);
        assertEquals(1.92691529f, n[0], 1e-7f);
        assertEquals(-2.10552096f, n[3], 1e-7f);
    }

    @Test
    void everyFixtureDrawIsBitExact() throws Exception {
        for (JsonNode c : fixture().get("cases")) {
            long seed = c.get("seed").asLong();
            TorchRandom r = new TorchRandom(seed);
            String kind = c.get("kind").asText();
            float[] got;
            switch (kind) {
                case "rand" -> got = r.rand(c.get("n").asInt());
                case "randn" -> got = r.randn(c.get("n").asInt());
                case "randn_bf16" -> got = bf16Normals(r, c.get("n").asInt());
                case "sequence" -> {
                    float[] a = r.rand(c.get("rand").asInt());
                    float[] b = r.randn(c.get("randn").asInt());
                    float[] d = bf16Normals(r, c.get("randn_bf16").asInt());
                    got = new float[a.length + b.length + d.length];
                    System.arraycopy(a, 0, got, 0, a.length);
                    System.arraycopy(b, 0, got, a.length, b.length);
                    System.arraycopy(d, 0, got, a.length + b.length, d.length);
                }
                default -> throw new AssertionError(kind);
            }
            assertArrayEquals(expected(c.get("bits")), bits(got), kind + " seed " + seed);
        }
    }

    @Test
    void aNormalStreamReadAtAnyPositionEqualsTheWholeDraw() {
        float[] whole = new TorchRandom(9).randn(1000);
        TorchRandom.NormalStream s = new TorchRandom.NormalStream(new TorchRandom(9), 1000, false);
        for (int k : new int[] {999, 0, 500, 17, 984, 985, 983, 16, 15}) assertEquals(whole[k], s.get(k), "element " + k);
    }
}
