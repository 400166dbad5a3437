package org.mergeengine.forward;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.mergeengine.MergeException;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.FormatException;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.LoraAdapter;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.tensor.Convert;

class DecoderForwardTest {
    @TempDir
    Path tmp;

    static Stream<TinyDecoders.Spec> families() {
        return Stream.of(TinyDecoders.llama(), TinyDecoders.mistral(), TinyDecoders.qwen2(), TinyDecoders.qwen3());
    }

    /** Two batches: one of unpadded rows, one left-padded (pads of 0, 2 and 5 tokens). */
    static List<Batch> batches(int vocab) {
        int[][] a = {{1, 5, 9, 13, 2, 7, 30}, {3, 3, 8, 21, 39, 0, 11}};
        int[][] ids = {{4, 17, 25, 6, 6, 33, 12, 1}, {0, 0, 9, 2, 31, 18, 5, 7}, {0, 0, 0, 0, 0, 14, 22, 3}};
        int[][] mask = {{1, 1, 1, 1, 1, 1, 1, 1}, {0, 0, 1, 1, 1, 1, 1, 1}, {0, 0, 0, 0, 0, 1, 1, 1}};
        for (int[] r : a) for (int v : r) assertTrue(v < vocab);
        return List.of(Batch.unpadded(a), new Batch(ids, mask));
    }

    /** Every layer input of every row, and the next-token log-probabilities, against the float64 reference. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("families")
    void matchesTheFloat64Reference(TinyDecoders.Spec spec) throws Exception {
        TinyDecoders.Model m = TinyDecoders.write(tmp.resolve(spec.type()), spec, 11);
        ReferenceDecoder ref = new ReferenceDecoder(m);
        List<Batch> batches = batches(spec.vocab());
        List<float[][][][]> got = collect(m.dir(), 2, batches, false);
        double[][][] lp;
        try (DecoderForward f = DecoderForward.open(m.dir(), 2)) {
            f.vocabBlock = 7; // the log-sum-exp runs over several blocks of the vocabulary, the last one short
            assertEquals(spec.layers(), f.numLayers());
            assertEquals(spec.hidden(), f.hiddenSize());
            assertEquals(spec.vocab(), f.vocabSize());
            lp = f.nextTokenLogProbs(batches);
        }
        double worst = 0;
        for (int bi = 0; bi < batches.size(); bi++) {
            Batch b = batches.get(bi);
            for (int r = 0; r < b.rows(); r++) {
                ReferenceDecoder.Result want = ref.run(b.ids()[r], b.mask()[r], 0);
                for (int l = 0; l < spec.layers(); l++) {
                    for (int t = 0; t < b.length(); t++) {
                        double[] w = want.hidden()[l][t];
                        float[] g = got.get(bi)[l][r][t];
                        double scale = 1e-6;
                        for (double v : w) scale = Math.max(scale, Math.abs(v));
                        for (int j = 0; j < w.length; j++) {
                            double err = Math.abs(g[j] - w[j]) / scale;
                            worst = Math.max(worst, err);
                            if (err > 2e-5) {
                                throw new AssertionError(spec.type() + " batch " + bi + " row " + r + " layer " + l + " position " + t
                                        + " element " + j + ": " + g[j] + " vs reference " + w[j]);
                            }
                        }
                    }
                }
                for (int t = 0; t + 1 < b.length(); t++) {
                    boolean real = b.mask()[r][t] == 1 && b.mask()[r][t + 1] == 1;
                    if (!real) {
                        assertTrue(Double.isNaN(lp[bi][r][t]), "padding position gives NaN");
                    } else {
                        assertEquals(want.logProbs()[t], lp[bi][r][t], 2e-4, spec.type() + " log-prob, batch " + bi + " row " + r + " position " + t);
                    }
                }
            }
        }
        assertTrue(worst > 0, "float32 against float64 differs somewhere; identical means the reference was not independent");
    }

    /**
     * A left-padded row's real tokens get the states of the unpadded prompt (its positions shifted
     * by the padding, which rotary embeddings see only through rounding): padding keys are unseen.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("families")
    void leftPaddedRowMatchesItsPrompt(TinyDecoders.Spec spec) throws Exception {
        TinyDecoders.Model m = TinyDecoders.write(tmp.resolve(spec.type()), spec, 12);
        ReferenceDecoder ref = new ReferenceDecoder(m);
        int[] prompt = {14, 22, 3, 9};
        int pad = 3;
        int[][] ids = {{0, 0, 0, 14, 22, 3, 9}};
        int[][] mask = {{0, 0, 0, 1, 1, 1, 1}};
        float[][][][] got = collect(m.dir(), 1, List.of(new Batch(ids, mask)), false).get(0);
        ReferenceDecoder.Result shifted = ref.run(prompt, new int[] {1, 1, 1, 1}, pad);
        int last = spec.layers() - 1;
        for (int t = 0; t < prompt.length; t++) {
            for (int j = 0; j < spec.hidden(); j++) {
                assertEquals(shifted.hidden()[last][t][j], got[last][0][pad + t][j], 2e-5 * 10, "layer " + last + " token " + t);
            }
        }
    }

    /** A query that sees only padding gets no attention output: its state after layer 0 is embedding + MLP(embedding). */
    @Test
    void fullyMaskedQueriesGetZeroAttention() throws Exception {
        TinyDecoders.Model m = TinyDecoders.write(tmp.resolve("q3"), TinyDecoders.qwen3(), 13);
        int[][] ids = {{7, 7, 20, 21}};
        int[][] mask = {{0, 0, 1, 1}};
        float[][][][] got = collect(m.dir(), 1, List.of(new Batch(ids, mask)), false).get(0);
        // Changing a padding token's id changes that padding position, never a real one.
        int[][] ids2 = {{8, 7, 20, 21}};
        float[][][][] got2 = collect(m.dir(), 1, List.of(new Batch(ids2, mask)), false).get(0);
        ReferenceDecoder ref = new ReferenceDecoder(m);
        ReferenceDecoder.Result r = ref.run(ids[0], mask[0], 0);
        for (int l = 0; l < 2; l++) {
            assertArrayEquals(got[l][0][2], got2[l][0][2], "real token unaffected by the id under padding, layer " + l);
            assertArrayEquals(got[l][0][3], got2[l][0][3]);
        }
        assertTrue(got[1][0][0][0] != got2[1][0][0][0]);
        // Independent check of the zero attention output: h1 = h0 + MLP(h0) at a padding position.
        double[] h0 = new double[32];
        for (int j = 0; j < 32; j++) h0[j] = got[0][0][0][j];
        double[] expect = mlpOnly(m, h0);
        for (int j = 0; j < 32; j++) assertEquals(expect[j], got[1][0][0][j], 1e-4);
        for (int j = 0; j < 32; j++) assertEquals(r.hidden()[1][0][j], got[1][0][0][j], 1e-4);
    }

    private static double[] mlpOnly(TinyDecoders.Model m, double[] h) {
        String p = "model.layers.0.";
        double[] nw = m.get(p + "post_attention_layernorm.weight");
        double ms = 0;
        for (double v : h) ms += v * v;
        double sc = 1 / Math.sqrt(ms / h.length + 1e-5);
        double[] n = new double[h.length];
        for (int j = 0; j < h.length; j++) n[j] = h[j] * sc * nw[j];
        double[] g = m.get(p + "mlp.gate_proj.weight"), u = m.get(p + "mlp.up_proj.weight"), d = m.get(p + "mlp.down_proj.weight");
        int inter = g.length / h.length;
        double[] a = new double[inter];
        for (int i = 0; i < inter; i++) {
            double gi = 0, ui = 0;
            for (int j = 0; j < h.length; j++) {
                gi += g[i * h.length + j] * n[j];
                ui += u[i * h.length + j] * n[j];
            }
            a[i] = gi / (1 + Math.exp(-gi)) * ui;
        }
        double[] out = h.clone();
        for (int j = 0; j < h.length; j++) for (int i = 0; i < inter; i++) out[j] += d[j * inter + i] * a[i];
        return out;
    }

    /** Streamed (weights read per layer) and resident weights, batches together or one at a time, 1 or 3 lanes: the same bits. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("families")
    void streamedAndUnstreamedGiveTheSameStates(TinyDecoders.Spec spec) throws Exception {
        TinyDecoders.Model m = TinyDecoders.write(tmp.resolve(spec.type()), spec, 14);
        List<Batch> batches = batches(spec.vocab());
        List<float[][][][]> streamed = collect(m.dir(), 3, batches, false);
        List<float[][][][]> resident = collect(m.dir(), 1, batches, true);
        for (int bi = 0; bi < batches.size(); bi++) {
            List<float[][][][]> alone = collect(m.dir(), 2, List.of(batches.get(bi)), false);
            for (int l = 0; l < spec.layers(); l++) {
                for (int r = 0; r < batches.get(bi).rows(); r++) {
                    for (int t = 0; t < batches.get(bi).length(); t++) {
                        assertArrayEquals(resident.get(bi)[l][r][t], streamed.get(bi)[l][r][t], "layer " + l);
                        assertArrayEquals(alone.get(0)[l][r][t], streamed.get(bi)[l][r][t], "layer " + l);
                    }
                }
            }
        }
    }

    /** The sink sees layers in order, batches in order within a layer, and owns what it is given. */
    @Test
    void sinkOrderAndOwnership() throws Exception {
        TinyDecoders.Model m = TinyDecoders.write(tmp.resolve("llama"), TinyDecoders.llama(), 15);
        List<String> calls = new ArrayList<>();
        List<float[][][]> kept = new ArrayList<>();
        try (DecoderForward f = DecoderForward.open(m.dir(), 2)) {
            f.layerInputs(batches(40), (b, l, h) -> {
                calls.add(l + ":" + b);
                kept.add(h);
            });
        }
        assertEquals(List.of("0:0", "0:1", "1:0", "1:1", "2:0", "2:1"), calls);
        // Layer 0 is the embedding itself: a later layer's update must not have changed the kept array.
        double[] emb = m.get("model.embed_tokens.weight");
        for (int j = 0; j < 32; j++) assertEquals((float) emb[1 * 32 + j], kept.get(0)[0][0][j]);
    }

    /** A base with a LoRA adapter applied (W + s·B·A, here s = 4/2) runs as the merged weights would. */
    @Test
    void loraAdaptedBaseRunsWithTheUpdate() throws Exception {
        TinyDecoders.Model m = TinyDecoders.write(tmp.resolve("q2"), TinyDecoders.qwen2(), 18);
        Path ad = tmp.resolve("adapter");
        Files.createDirectories(ad);
        Files.writeString(ad.resolve("adapter_config.json"), "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4}");
        SplittableRandom rnd = new SplittableRandom(5);
        int h = 24, inter = 36;
        float[] qa = randoms(rnd, 2 * h), qb = randoms(rnd, h * 2), da = randoms(rnd, 2 * inter), db = randoms(rnd, h * 2);
        SafetensorsWriter.writeFile(ad.resolve("adapter_model.safetensors"), List.of(
                Convert.tensorData("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight", DType.F32, new long[] {2, h}, qa),
                Convert.tensorData("base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight", DType.F32, new long[] {h, 2}, qb),
                Convert.tensorData("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight", DType.F32, new long[] {2, inter}, da),
                Convert.tensorData("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight", DType.F32, new long[] {h, 2}, db)));
        Map<String, double[]> merged = new HashMap<>(m.w());
        merged.put("model.layers.1.self_attn.q_proj.weight", plusLowRank(m.get("model.layers.1.self_attn.q_proj.weight"), qb, qa, h, h));
        merged.put("model.layers.0.mlp.down_proj.weight", plusLowRank(m.get("model.layers.0.mlp.down_proj.weight"), db, da, h, inter));
        TinyDecoders.Model expected = new TinyDecoders.Model(m.dir(), m.spec(), merged);
        List<Batch> batches = batches(40);
        List<float[][][][]> got = new ArrayList<>();
        try (ModelFolder base = ModelFolder.open(m.dir()); ModelFolder adapted = base.withAdapter(LoraAdapter.open(ad));
             DecoderForward f = DecoderForward.open(adapted, 2)) {
            for (int i = 0; i < batches.size(); i++) got.add(new float[2][][][]);
            f.layerInputs(batches, (b, l, hs) -> got.get(b)[l] = hs);
        }
        ReferenceDecoder withUpdate = new ReferenceDecoder(expected), without = new ReferenceDecoder(m);
        Batch b = batches.get(1);
        double[][][] want = withUpdate.run(b.ids()[0], b.mask()[0], 0).hidden(), plain = without.run(b.ids()[0], b.mask()[0], 0).hidden();
        boolean differs = false;
        for (int t = 0; t < b.length(); t++) {
            for (int j = 0; j < h; j++) {
                assertEquals(want[1][t][j], got.get(1)[1][0][t][j], 1e-4, "layer 1 input, position " + t);
                differs |= Math.abs(want[1][t][j] - plain[1][t][j]) > 1e-2;
            }
        }
        assertTrue(differs, "the update changes the states");
    }

    private static float[] randoms(SplittableRandom rnd, int n) {
        float[] f = new float[n];
        for (int i = 0; i < n; i++) f[i] = (float) rnd.nextDouble(-0.5, 0.5);
        return f;
    }

    /** W[rows, cols] + 2 · B[rows, r=2] · A[2, cols]. */
    private static double[] plusLowRank(double[] w, float[] b, float[] a, int rows, int cols) {
        double[] out = w.clone();
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                double d = 0;
                for (int k = 0; k < 2; k++) d += (double) b[i * 2 + k] * a[k * cols + j];
                out[i * cols + j] += 2 * d;
            }
        }
        return out;
    }

    @Test
    void badInputsAreNamed() throws Exception {
        TinyDecoders.Model m = TinyDecoders.write(tmp.resolve("llama"), TinyDecoders.llama(), 16);
        try (DecoderForward f = DecoderForward.open(m.dir(), 1)) {
            MergeException e = assertThrows(MergeException.class, () -> f.layerInputs(List.of(Batch.unpadded(new int[][] {{1, 40}})), (b, l, h) -> {}));
            assertTrue(e.getMessage().contains("token id 40"), e.getMessage());
            assertEquals(MergeException.Kind.USER, e.kind());
        }
        var cfg = Json.readObject(m.dir().resolve("config.json"));
        cfg.put("model_type", "gpt2");
        Json.write(m.dir().resolve("config.json"), cfg);
        FormatException e = assertThrows(FormatException.class, () -> DecoderForward.open(m.dir(), 1));
        assertTrue(e.getMessage().contains("model_type 'gpt2'"), e.getMessage());

        Path q = tmp.resolve("q2");
        TinyDecoders.Model m2 = TinyDecoders.write(q, TinyDecoders.qwen2(), 17);
        var c2 = Json.readObject(q.resolve("config.json"));
        c2.put("intermediate_size", 50);
        Json.write(q.resolve("config.json"), c2);
        try (DecoderForward f = DecoderForward.open(m2.dir(), 1)) {
            FormatException e2 = assertThrows(FormatException.class, () -> f.layerInputs(List.of(Batch.unpadded(new int[][] {{1, 2}})), (b, l, h) -> {}));
            assertTrue(e2.getMessage().contains("model.layers.0.mlp.gate_proj.weight") && e2.getMessage().contains("[36, 24]"), e2.getMessage());
        }
        Files.delete(q.resolve("config.json"));
        assertThrows(FormatException.class, () -> DecoderForward.open(m2.dir(), 1));
    }

    /** layer inputs per batch, [layer][row][position][h] */
    static List<float[][][][]> collect(Path dir, int lanes, List<Batch> batches, boolean resident) throws Exception {
        List<float[][][][]> out = new ArrayList<>();
        try (DecoderForward f = DecoderForward.open(dir, lanes, resident)) {
            for (int i = 0; i < batches.size(); i++) out.add(new float[f.numLayers()][][][]);
            f.layerInputs(batches, (b, l, h) -> out.get(b)[l] = h);
        }
        return out;
    }
}
