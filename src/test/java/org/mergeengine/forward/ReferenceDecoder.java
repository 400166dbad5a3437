package org.mergeengine.forward;

import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * The test's own forward pass: plain float64 loops over one prompt row, every weight in memory,
 * written from the model definitions (not from the code under test), as the yardstick for
 * {@link DecoderForward}.
 */
final class ReferenceDecoder {
    /** hidden[l][t][h]: l = 0..L-1 the input of layer l, l = L the output of the last layer (before the final norm). */
    record Result(double[][][] hidden, double[] logProbs) {}

    private final TinyDecoders.Model m;
    private final TinyDecoders.Spec s;
    private final double[] invFreq;

    ReferenceDecoder(TinyDecoders.Model m) {
        this.m = m;
        this.s = m.spec();
        int half = s.hd() / 2;
        invFreq = new double[half];
        for (int i = 0; i < half; i++) invFreq[i] = Math.pow(s.ropeTheta(), -2.0 * i / s.hd());
        ObjectNode sc = s.ropeScaling();
        if (sc != null) {
            double factor = sc.get("factor").asDouble();
            if (sc.get("rope_type").asText().equals("linear")) {
                for (int i = 0; i < half; i++) invFreq[i] /= factor;
            } else { // llama3
                double lo = sc.get("low_freq_factor").asDouble(), hi = sc.get("high_freq_factor").asDouble();
                double orig = sc.get("original_max_position_embeddings").asDouble();
                for (int i = 0; i < half; i++) {
                    double periods = orig * invFreq[i] / (2 * Math.PI); // how many turns the original context makes
                    if (periods > hi) continue;                     // fast rotations unchanged
                    if (periods < lo) { invFreq[i] /= factor; continue; }
                    double mix = (periods - lo) / (hi - lo);
                    invFreq[i] = invFreq[i] * mix + invFreq[i] / factor * (1 - mix);
                }
            }
        }
    }

    /** One row: token ids, mask (1 real, 0 padding), and the position of token 0. */
    Result run(int[] ids, int[] mask, int firstPosition) {
        int t = ids.length, h = s.hidden(), L = s.layers();
        double[][][] out = new double[L + 1][][];
        double[][] x = new double[t][h];
        double[] emb = m.get("model.embed_tokens.weight");
        for (int p = 0; p < t; p++) for (int j = 0; j < h; j++) x[p][j] = emb[ids[p] * h + j];
        for (int l = 0; l < L; l++) {
            out[l] = copy(x);
            String pre = "model.layers." + l + ".";
            double[][] a = new double[t][];
            for (int p = 0; p < t; p++) a[p] = norm(x[p], m.get(pre + "input_layernorm.weight"));
            double[][] attn = attention(pre, a, mask, firstPosition);
            for (int p = 0; p < t; p++) for (int j = 0; j < h; j++) x[p][j] += attn[p][j];
            for (int p = 0; p < t; p++) {
                double[] n = norm(x[p], m.get(pre + "post_attention_layernorm.weight"));
                double[] g = proj(n, pre + "mlp.gate_proj"), u = proj(n, pre + "mlp.up_proj");
                double[] act = new double[g.length];
                for (int j = 0; j < g.length; j++) act[j] = g[j] / (1 + Math.exp(-g[j])) * u[j];
                double[] d = proj(act, pre + "mlp.down_proj");
                for (int j = 0; j < h; j++) x[p][j] += d[j];
            }
        }
        out[L] = copy(x);
        double[] lp = new double[Math.max(0, t - 1)];
        String headName = s.tied() ? "model.embed_tokens.weight" : "lm_head.weight";
        double[] head = m.get(headName);
        for (int p = 0; p + 1 < t; p++) {
            double[] n = norm(x[p], m.get("model.norm.weight"));
            double[] logits = new double[s.vocab()];
            double mx = Double.NEGATIVE_INFINITY;
            for (int v = 0; v < s.vocab(); v++) {
                for (int j = 0; j < h; j++) logits[v] += head[v * h + j] * n[j];
                mx = Math.max(mx, logits[v]);
            }
            double z = 0;
            for (double v : logits) z += Math.exp(v - mx);
            lp[p] = logits[ids[p + 1]] - mx - Math.log(z);
        }
        return new Result(out, lp);
    }

    private double[][] attention(String pre, double[][] a, int[] mask, int firstPosition) {
        int t = a.length, hd = s.hd(), heads = s.heads(), perKv = s.heads() / s.kvHeads();
        double[][] q = new double[t][], k = new double[t][], v = new double[t][];
        for (int p = 0; p < t; p++) {
            q[p] = proj(a[p], pre + "self_attn.q_proj");
            k[p] = proj(a[p], pre + "self_attn.k_proj");
            v[p] = proj(a[p], pre + "self_attn.v_proj");
            for (int hh = 0; hh < heads; hh++) {
                if (s.qkNorm()) headNorm(q[p], hh * hd, m.get(pre + "self_attn.q_norm.weight"));
                rotate(q[p], hh * hd, firstPosition + p);
            }
            for (int hh = 0; hh < s.kvHeads(); hh++) {
                if (s.qkNorm()) headNorm(k[p], hh * hd, m.get(pre + "self_attn.k_norm.weight"));
                rotate(k[p], hh * hd, firstPosition + p);
            }
        }
        double[][] ctx = new double[t][heads * hd];
        for (int hh = 0; hh < heads; hh++) {
            int kvh = hh / perKv;
            for (int i = 0; i < t; i++) {
                double[] w = new double[t];
                double total = 0, top = Double.NEGATIVE_INFINITY;
                boolean any = false;
                for (int j = 0; j <= i; j++) {
                    boolean visible = mask[j] == 1 && (s.slidingWindow() == null || i - j < s.slidingWindow());
                    if (!visible) continue;
                    double dot = 0;
                    for (int d = 0; d < hd; d++) dot += q[i][hh * hd + d] * k[j][kvh * hd + d];
                    w[j] = dot / Math.sqrt(hd);
                    top = Math.max(top, w[j]);
                    any = true;
                }
                if (!any) continue;
                for (int j = 0; j <= i; j++) {
                    boolean visible = mask[j] == 1 && (s.slidingWindow() == null || i - j < s.slidingWindow());
                    w[j] = visible ? Math.exp(w[j] - top) : 0;
                    total += w[j];
                }
                for (int j = 0; j <= i; j++) {
                    for (int d = 0; d < hd; d++) ctx[i][hh * hd + d] += w[j] / total * v[j][kvh * hd + d];
                }
            }
        }
        double[][] o = new double[t][];
        for (int p = 0; p < t; p++) o[p] = proj(ctx[p], pre + "self_attn.o_proj");
        return o;
    }

    private void rotate(double[] x, int off, int pos) {
        int half = s.hd() / 2;
        for (int i = 0; i < half; i++) {
            double c = Math.cos(pos * invFreq[i]), sn = Math.sin(pos * invFreq[i]);
            double lo = x[off + i], hi = x[off + half + i];
            x[off + i] = lo * c - hi * sn;
            x[off + half + i] = lo * sn + hi * c;
        }
    }

    private double[] proj(double[] in, String name) {
        double[] w = m.get(name + ".weight");
        int rows = w.length / in.length;
        double[] y = new double[rows];
        double[] b = m.w().get(name + ".bias");
        for (int r = 0; r < rows; r++) {
            double acc = b == null ? 0 : b[r];
            for (int c = 0; c < in.length; c++) acc += w[r * in.length + c] * in[c];
            y[r] = acc;
        }
        return y;
    }

    private static double[] norm(double[] x, double[] w) {
        double ms = 0;
        for (double v : x) ms += v * v;
        double scale = 1 / Math.sqrt(ms / x.length + 1e-5);
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) y[i] = x[i] * scale * w[i];
        return y;
    }

    private void headNorm(double[] x, int off, double[] w) {
        double ms = 0;
        for (int i = 0; i < w.length; i++) ms += x[off + i] * x[off + i];
        double scale = 1 / Math.sqrt(ms / w.length + 1e-5);
        for (int i = 0; i < w.length; i++) x[off + i] = x[off + i] * scale * w[i];
    }

    private static double[][] copy(double[][] x) {
        double[][] c = new double[x.length][];
        for (int i = 0; i < x.length; i++) c[i] = x[i].clone();
        return c;
    }
}
