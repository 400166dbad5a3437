package org.mergeengine.moe;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.formats.DType;
import org.mergeengine.tokenize.PromptTokenizer;
import org.mergeengine.tools.SyntheticModel;

/** Gate math per mode against values computed independently here (double precision, or the spec's worked figures). */
class GateMathTest {
    @TempDir
    Path dir;

    @Test
    void cheapEmbedGivesTheSpecsWorkedExample() {
        float[][] emb = new float[8][4];
        emb[1] = new float[] {1, 0, 0, 0};
        emb[2] = new float[] {0, 1, 0, 0};
        emb[5] = new float[] {1, 1, 0, 0};
        emb[6] = new float[] {0, 1, 1, 0};
        emb[7] = new float[] {0.5f, 0, 0, 2};
        GateMath.Rows rows = id -> emb[id];
        float[] pos = GateMath.cheapEmbed(rows, 4, new int[][] {{1, 5, 6}, {1, 1, 7}}, new int[][] {{1, 1, 1}, {0, 1, 1}});
        assertEquals(0.759257f, pos[0], 1e-6f);
        assertEquals(0.216930f, pos[2], 1e-6f);
        float[] neg = GateMath.cheapEmbed(rows, 4, new int[][] {{1, 2}}, new int[][] {{1, 1}});
        float[] g = GateMath.normalize(GateMath.subtract(pos, neg, false), false);
        float[] want = {0.0932620466f, -0.488658637f, 0.387947142f, 0.775894284f};
        for (int h = 0; h < 4; h++) assertEquals(want[h], g[h], 2e-7f, "element " + h);
    }

    /** A stand-in forward pass: hidden[b][t][h] is a fixed function of (batch, layer, b, t, h). */
    static final class FakeForward implements HiddenStates {
        final List<PromptTokenizer.Batch> seen = new ArrayList<>();

        static float value(int batch, int layer, int b, int t, int h) {
            return (float) Math.sin(1.3 * batch + 0.7 * layer + 0.11 * b + 0.37 * t + 0.05 * h * (layer + 1)) * (1 + h % 3);
        }

        @Override public int numLayers() { return 3; }
        @Override public int hiddenSize() { return 8; }

        @Override
        public void run(List<PromptTokenizer.Batch> batches, Sink sink) {
            seen.addAll(batches);
            for (int l = 0; l < 3; l++) {
                for (int i = 0; i < batches.size(); i++) {
                    int[][] ids = batches.get(i).ids();
                    float[][][] hs = new float[ids.length][ids[0].length][8];
                    for (int b = 0; b < ids.length; b++) for (int t = 0; t < ids[0].length; t++) for (int h = 0; h < 8; h++) hs[b][t][h] = value(i, l, b, t, h);
                    sink.accept(i, l, hs);
                }
            }
        }
    }

    static double[] mean(int batch, int layer, int rows, int len, boolean last) {
        double[] v = new double[8];
        for (int b = 0; b < rows; b++) {
            for (int h = 0; h < 8; h++) {
                if (last) v[h] += FakeForward.value(batch, layer, b, len - 1, h) / rows;
                else for (int t = 0; t < len; t++) v[h] += FakeForward.value(batch, layer, b, t, h) / (double) (len * rows);
            }
        }
        return v;
    }

    void hiddenMode(String mode, boolean last) throws Exception {
        SyntheticModel.writeTokenizer(dir, 100, List.of());
        MoeConfig cfg = MoeConfig.parse("base_model: b\ngate_mode: " + mode + "\nexperts:\n"
                + "  - source_model: e1\n    positive_prompts: [\"ab c\", \"a\"]\n    negative_prompts: [\"d e f\"]\n"
                + "  - source_model: e2\n    positive_prompts: [\"x\"]\n");
        FakeForward fwd = new FakeForward();
        GateBuilder.Gates g;
        try (PromptTokenizer tok = PromptTokenizer.open(dir)) {
            g = GateBuilder.hidden(cfg, tok, fwd, 1);
        }
        assertEquals(DType.BF16, g.dtype());
        assertEquals(3, fwd.seen.size(), "one batch per prompt list: expert 0's positives, its negatives, expert 1's positives");
        int posLen = fwd.seen.get(0).ids()[0].length, negLen = fwd.seen.get(1).ids()[0].length, p1Len = fwd.seen.get(2).ids()[0].length;
        assertEquals(3, posLen); // "<s>ab c" -> <s> ab c; "<s>a" padded on the left
        for (int l = 0; l < 3; l++) {
            double[] pos = mean(0, l, 2, posLen, last), neg = mean(1, l, 1, negLen, last);
            double[] r0 = new double[8];
            for (int h = 0; h < 8; h++) r0[h] = pos[h] - neg[h];
            assertClose(MoeCommandTest.unit(r0), g.rows()[l][0], mode + " layer " + l + " expert 0");
            assertClose(MoeCommandTest.unit(mean(2, l, 1, p1Len, last)), g.rows()[l][1], mode + " layer " + l + " expert 1");
        }
    }

    static void assertClose(double[] want, float[] got, String what) {
        for (int h = 0; h < want.length; h++) assertEquals(want[h], got[h], 1.5e-2 * Math.max(1, Math.abs(want[h])), what + " element " + h);
        double dot = 0, n1 = 0, n2 = 0;
        for (int h = 0; h < want.length; h++) {
            dot += want[h] * got[h];
            n1 += want[h] * want[h];
            n2 += got[h] * (double) got[h];
        }
        assertTrue(dot / Math.sqrt(n1 * n2) > 0.9999, what + " cosine " + dot / Math.sqrt(n1 * n2));
    }

    @Test
    void hiddenTakesTheLastPositionOfEveryPrompt() throws Exception {
        hiddenMode("hidden", true);
    }

    @Test
    void hiddenLastIsHidden() throws Exception {
        hiddenMode("hidden_last", true);
    }

    @Test
    void hiddenAvgAveragesEveryPositionPaddingIncluded() throws Exception {
        hiddenMode("hidden_avg", false);
    }

    @Test
    void randomGatesDrawTheSharedRowsToo() {
        MoeConfig cfg = MoeConfig.parse("base_model: b\ngate_mode: random\nexperts:\n  - source_model: e1\n  - source_model: e2\n"
                + "shared_experts:\n  - source_model: s\n");
        GateBuilder.Gates g = GateBuilder.random(cfg, 2, 16, 11);
        assertEquals(3, g.rows()[0].length);
        float[] draw = new TorchRandom(11).randn(2 * 3 * 16);
        assertEquals(draw[3 * 16 + 2 * 16 + 5], g.rows()[1][2][5]);
        assertEquals(draw[16 + 7], g.rows()[0][1][7]);
        TorchRandom fresh = new TorchRandom(11);
        fresh.randn(2 * 3 * 16);
        assertEquals(fresh.next32(), g.after().copy().next32(), "the noise draws continue the stream after the gates");
    }

    @Test
    void degenerateGatesAreNamedAsMergekitNamesThem() {
        SplittableRandom r = new SplittableRandom(1);
        float[][][] g = new float[4][2][8];
        for (float[][] l : g) for (float[] row : l) for (int h = 0; h < 8; h++) row[h] = (float) r.nextGaussian();
        assertNull(GateMath.degenerateWarning(GateMath.conditionNumbers(g)));
        g[2][1] = g[2][0].clone();             // identical rows: singular
        assertTrue(GateMath.degenerateWarning(GateMath.conditionNumbers(g)).startsWith("layer 2 has degenerate routing parameters"));
        for (int h = 0; h < 8; h++) g[3][1][h] = g[3][0][h] * 2f + (h == 0 ? 0.01f : 0f); // nearly parallel
        assertTrue(GateMath.degenerateWarning(GateMath.conditionNumbers(g)).startsWith("layers 2 and 3 have"));
        g[0][1] = g[0][0].clone();
        assertTrue(GateMath.degenerateWarning(GateMath.conditionNumbers(g)).startsWith("layers 0, 2, and 3 have"));
        g[1][1] = new float[8];
        String all = GateMath.degenerateWarning(GateMath.conditionNumbers(g));
        assertTrue(all.startsWith("ALL layers have") && all.endsWith("One or more experts will be underutilized in your model."), all);
        double[] ok = GateMath.conditionNumbers(new float[][][] {{{3, 0}, {0, 1}}});
        assertEquals(3.0, ok[0], 1e-9);
        assertEquals(Double.POSITIVE_INFINITY, GateMath.conditionNumbers(new float[][][] {{{1, 0}, {0, 1}, {1, 1}}})[0]);
    }
}
