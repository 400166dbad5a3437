package org.mergeengine.forward;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ForkJoinPool;
import java.util.function.IntConsumer;
import java.util.stream.IntStream;
import org.mergeengine.MergeException;
import org.mergeengine.formats.ModelFolder;

/**
 * A Llama-family decoder (Llama, Mistral, Qwen2, Qwen3) run on batches of prompts, streamed by
 * layer: every prompt's residual stream stays in memory while the weights of one layer at a time
 * (its attention, then its MLP) are read, used for all batches and dropped. Peak memory is one
 * layer's largest half in float32 plus the activations, whatever the depth of the model.
 *
 * <p>Semantics follow transformers' eager/SDPA reference: positions 0..T-1 for every row whether or
 * not it is left-padded; a key is visible to a query when it is not later and not padding (and, for
 * sliding layers, within the window); a query that sees no key gets a zero attention output.
 * Arithmetic is float32 whatever the stored dtype.
 */
public final class DecoderForward implements AutoCloseable {
    private final ModelFolder model;
    private final DecoderConfig cfg;
    private final Weights weights;
    private final ForkJoinPool pool;
    /** Layers' weights kept after use, when asked to (null: streamed). */
    private final Map<Integer, Attention> keptAttention;
    private final Map<Integer, Mlp> keptMlp;
    private final boolean ownsModel;

    private DecoderForward(ModelFolder model, boolean ownsModel, DecoderConfig cfg, int lanes, boolean keepWeights) {
        this.model = model;
        this.ownsModel = ownsModel;
        this.cfg = cfg;
        this.weights = new Weights(model);
        this.pool = new ForkJoinPool(Math.max(1, lanes));
        this.keptAttention = keepWeights ? new HashMap<>() : null;
        this.keptMlp = keepWeights ? new HashMap<>() : null;
    }

    public static DecoderForward open(Path modelDir, int lanes) throws IOException {
        return open(modelDir, lanes, false);
    }

    /**
     * {@code keepWeights}: hold every layer's weights once read, instead of streaming them (for
     * repeated runs over a small model; gives the same results).
     */
    public static DecoderForward open(Path modelDir, int lanes, boolean keepWeights) throws IOException {
        if (lanes < 1) throw new IllegalArgumentException("lanes must be at least 1");
        ModelFolder m = ModelFolder.open(modelDir);
        try {
            return create(m, true, lanes, keepWeights);
        } catch (RuntimeException e) {
            m.close();
            throw e;
        }
    }

    /**
     * Runs a model already opened by the caller (a hub snapshot, a base with a LoRA adapter
     * applied): its files stay open when this closes.
     */
    public static DecoderForward open(ModelFolder model, int lanes) {
        if (lanes < 1) throw new IllegalArgumentException("lanes must be at least 1");
        return create(model, false, lanes, false);
    }

    private static DecoderForward create(ModelFolder m, boolean owns, int lanes, boolean keepWeights) {
        DecoderConfig cfg = DecoderConfig.parse(m.config(), m.dir().resolve("config.json"));
        DecoderForward f = new DecoderForward(m, owns, cfg, lanes, keepWeights);
        f.weights.locate(EMBED, cfg.vocab(), cfg.hidden());
        return f;
    }

    static final String EMBED = "model.embed_tokens.weight";

    public int numLayers() { return cfg.layers(); }
    public int hiddenSize() { return cfg.hidden(); }
    public int vocabSize() { return cfg.vocab(); }
    public DecoderConfig config() { return cfg; }

    /** Runs every batch through the decoder layer by layer (one layer's weights in memory at a time). */
    public void layerInputs(List<Batch> batches, LayerInputs sink) {
        run(batches, sink);
    }

    /**
     * For each batch, row b and position t &lt; T-1: the natural log of the probability the model
     * gives to token ids[b][t+1] after ids[b][0..t], or NaN where position t or t+1 is padding.
     */
    public double[][][] nextTokenLogProbs(List<Batch> batches) {
        List<float[][]> states = run(batches, null);
        float[] norm = weights.vector("model.norm.weight", cfg.hidden());
        for (float[][] h : states) for (float[] row : h) rmsNorm(row, norm, row);
        return new LogProbs(this, vocabBlock).compute(batches, states);
    }

    /** Vocabulary rows of the output projection read at a time (tests make it small). */
    int vocabBlock = 2048;

    /**
     * With no sink: the final hidden states (before the final norm) of every batch, rows flattened
     * b·T + t. With a sink: its layer inputs, and the last layer is not run.
     */
    private List<float[][]> run(List<Batch> batches, LayerInputs sink) {
        for (int i = 0; i < batches.size(); i++) check(batches.get(i), i);
        List<float[][]> states = new ArrayList<>();
        for (Batch b : batches) states.add(embed(b));
        for (int l = 0; l < cfg.layers(); l++) {
            if (sink != null) {
                for (int i = 0; i < batches.size(); i++) {
                    Batch b = batches.get(i);
                    float[][] h = states.get(i);
                    float[][][] copy = new float[b.rows()][b.length()][];
                    for (int r = 0; r < b.rows(); r++) for (int t = 0; t < b.length(); t++) copy[r][t] = h[r * b.length() + t].clone();
                    sink.accept(i, l, copy);
                }
            }
            if (sink != null && l == cfg.layers() - 1) break; // the last layer's output is not asked for
            Attention attn = attention(l);
            for (int i = 0; i < batches.size(); i++) attend(l, attn, batches.get(i), states.get(i));
            attn = null; // dropped before the MLP's weights are read
            Mlp mlp = mlp(l);
            for (float[][] h : states) mlp(mlp, h);
            weights.dropFactors();
        }
        return states;
    }

    private void check(Batch b, int index) {
        String where = "batch " + index;
        if (b.ids() == null || b.mask() == null || b.ids().length != b.mask().length) {
            throw new IllegalArgumentException(where + ": ids and mask must have the same number of rows");
        }
        int t = b.length();
        for (int r = 0; r < b.rows(); r++) {
            if (b.ids()[r].length != t || b.mask()[r].length != t) throw new IllegalArgumentException(where + ", row " + r + ": rows must all be " + t + " long");
            for (int p = 0; p < t; p++) {
                int id = b.ids()[r][p];
                if (id < 0 || id >= cfg.vocab()) {
                    throw MergeException.user(model.dir() + ": token id " + id + " (" + where + ", row " + r + ", position " + p
                            + ") is outside the model's vocabulary of " + cfg.vocab() + "; was the text tokenized with this model's tokenizer?");
                }
                if (b.mask()[r][p] != 0 && b.mask()[r][p] != 1) throw new IllegalArgumentException(where + ": mask values must be 0 or 1");
            }
        }
    }

    private float[][] embed(Batch b) {
        int hid = cfg.hidden(), t = b.length();
        var l = weights.locate(EMBED, cfg.vocab(), hid);
        Map<Integer, float[]> rows = new HashMap<>();
        float[][] h = new float[b.rows() * t][];
        for (int r = 0; r < b.rows(); r++) {
            for (int p = 0; p < t; p++) {
                float[] e = rows.computeIfAbsent(b.ids()[r][p], id -> {
                    float[] v = new float[hid];
                    weights.read(l, (long) id * hid, hid, v, 0);
                    return v;
                });
                h[r * t + p] = e.clone();
            }
        }
        return h;
    }

    record Attention(float[] inNorm, Linear q, Linear k, Linear v, Linear o, float[] qNorm, float[] kNorm) {}

    record Mlp(float[] postNorm, Linear gate, Linear up, Linear down) {}

    private Attention attention(int l) {
        if (keptAttention != null && keptAttention.containsKey(l)) return keptAttention.get(l);
        String p = "model.layers." + l + ".";
        int hid = cfg.hidden(), qd = cfg.heads() * cfg.headDim(), kd = cfg.kvHeads() * cfg.headDim();
        Attention a = new Attention(
                weights.vector(p + "input_layernorm.weight", hid),
                weights.linear(p + "self_attn.q_proj.weight", qd, hid, weights.optionalVector(p + "self_attn.q_proj.bias", qd)),
                weights.linear(p + "self_attn.k_proj.weight", kd, hid, weights.optionalVector(p + "self_attn.k_proj.bias", kd)),
                weights.linear(p + "self_attn.v_proj.weight", kd, hid, weights.optionalVector(p + "self_attn.v_proj.bias", kd)),
                weights.linear(p + "self_attn.o_proj.weight", hid, qd, weights.optionalVector(p + "self_attn.o_proj.bias", hid)),
                weights.optionalVector(p + "self_attn.q_norm.weight", cfg.headDim()),
                weights.optionalVector(p + "self_attn.k_norm.weight", cfg.headDim()));
        if (keptAttention != null) keptAttention.put(l, a);
        return a;
    }

    private Mlp mlp(int l) {
        if (keptMlp != null && keptMlp.containsKey(l)) return keptMlp.get(l);
        String p = "model.layers." + l + ".";
        int hid = cfg.hidden(), in = cfg.intermediate();
        Mlp m = new Mlp(
                weights.vector(p + "post_attention_layernorm.weight", hid),
                weights.linear(p + "mlp.gate_proj.weight", in, hid, weights.optionalVector(p + "mlp.gate_proj.bias", in)),
                weights.linear(p + "mlp.up_proj.weight", in, hid, weights.optionalVector(p + "mlp.up_proj.bias", in)),
                weights.linear(p + "mlp.down_proj.weight", hid, in, weights.optionalVector(p + "mlp.down_proj.bias", hid)));
        if (keptMlp != null) keptMlp.put(l, m);
        return m;
    }

    /** h += o_proj(attention(norm(h))) for one batch. */
    private void attend(int layer, Attention a, Batch b, float[][] h) {
        int rows = h.length, t = b.length(), hd = cfg.headDim(), half = hd / 2;
        float[][] x = normed(h, a.inNorm());
        float[][] q = MatMul.apply(pool, x, a.q()), k = MatMul.apply(pool, x, a.k()), v = MatMul.apply(pool, x, a.v());
        x = null;
        float[][][] cs = cfg.rope().tables(t);
        parallel(rows, m -> {
            int pos = m % t;
            for (int head = 0; head < cfg.heads(); head++) {
                if (a.qNorm() != null) rmsNorm(q[m], head * hd, hd, a.qNorm());
                Rope.apply(q[m], head * hd, half, cs[0][pos], cs[1][pos]);
            }
            for (int head = 0; head < cfg.kvHeads(); head++) {
                if (a.kNorm() != null) rmsNorm(k[m], head * hd, hd, a.kNorm());
                Rope.apply(k[m], head * hd, half, cs[0][pos], cs[1][pos]);
            }
        });
        float[][] ctx = new float[rows][cfg.heads() * hd];
        int group = cfg.heads() / cfg.kvHeads();
        int window = cfg.sliding(layer) ? cfg.slidingWindow() : Integer.MAX_VALUE;
        float scale = (float) (1.0 / Math.sqrt(hd));
        parallel(b.rows() * cfg.heads(), job -> {
            int r = job / cfg.heads(), head = job % cfg.heads();
            int qo = head * hd, ko = (head / group) * hd;
            int[] mask = b.mask()[r];
            float[] scores = new float[t];
            for (int i = 0; i < t; i++) {
                float[] qi = q[r * t + i];
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j <= i; j++) {
                    if (mask[j] == 0 || i - j >= window) {
                        scores[j] = Float.NEGATIVE_INFINITY;
                        continue;
                    }
                    float[] kj = k[r * t + j];
                    float s = 0;
                    for (int d = 0; d < hd; d++) s += qi[qo + d] * kj[ko + d];
                    scores[j] = s * scale;
                    max = Math.max(max, scores[j]);
                }
                if (max == Float.NEGATIVE_INFINITY) continue; // no visible key: zero output
                float[] out = ctx[r * t + i];
                double sum = 0;
                for (int j = 0; j <= i; j++) {
                    float e = scores[j] == Float.NEGATIVE_INFINITY ? 0f : (float) Math.exp(scores[j] - max);
                    scores[j] = e;
                    sum += e;
                }
                float inv = (float) (1.0 / sum);
                for (int j = 0; j <= i; j++) {
                    float p = scores[j] * inv;
                    if (p == 0) continue;
                    float[] vj = v[r * t + j];
                    for (int d = 0; d < hd; d++) out[qo + d] += p * vj[ko + d];
                }
            }
        });
        float[][] o = MatMul.apply(pool, ctx, a.o());
        for (int m = 0; m < rows; m++) add(h[m], o[m]);
    }

    /** h += down(silu(gate(x)) · up(x)), x = norm(h). */
    private void mlp(Mlp w, float[][] h) {
        float[][] x = normed(h, w.postNorm());
        float[][] g = MatMul.apply(pool, x, w.gate());
        float[][] u = MatMul.apply(pool, x, w.up());
        x = null;
        parallel(g.length, m -> {
            float[] gm = g[m], um = u[m];
            for (int j = 0; j < gm.length; j++) {
                float z = gm[j];
                gm[j] = z / (1f + (float) Math.exp(-z)) * um[j];
            }
        });
        float[][] d = MatMul.apply(pool, g, w.down());
        for (int m = 0; m < h.length; m++) add(h[m], d[m]);
    }

    private float[][] normed(float[][] h, float[] weight) {
        float[][] x = new float[h.length][h[0].length];
        parallel(h.length, m -> rmsNorm(h[m], weight, x[m]));
        return x;
    }

    private void rmsNorm(float[] in, float[] weight, float[] out) {
        double ss = 0;
        for (float f : in) ss += (double) f * f;
        float r = (float) (1.0 / Math.sqrt(ss / in.length + cfg.rmsEps()));
        for (int i = 0; i < in.length; i++) out[i] = weight[i] * (in[i] * r);
    }

    private void rmsNorm(float[] v, int off, int n, float[] weight) {
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double) v[off + i] * v[off + i];
        float r = (float) (1.0 / Math.sqrt(ss / n + cfg.rmsEps()));
        for (int i = 0; i < n; i++) v[off + i] = weight[i] * (v[off + i] * r);
    }

    private static void add(float[] h, float[] d) {
        for (int i = 0; i < h.length; i++) h[i] += d[i];
    }

    void parallel(int n, IntConsumer body) {
        if (pool.getParallelism() <= 1 || n <= 1) {
            for (int i = 0; i < n; i++) body.accept(i);
        } else {
            pool.submit(() -> IntStream.range(0, n).parallel().forEach(body)).join();
        }
    }

    ForkJoinPool pool() { return pool; }
    Weights weights() { return weights; }

    @Override
    public void close() {
        pool.shutdownNow();
        if (ownsModel) model.close();
    }
}
