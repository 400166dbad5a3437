package org.mergeengine.forward;

import java.util.Arrays;
import java.util.List;
import org.mergeengine.formats.ModelFolder;

/**
 * Next-token log-probabilities from final (normed) hidden states, with the output projection read
 * a block of vocabulary rows at a time: each block's logits update a running log-sum-exp per
 * position, so neither the projection nor the [tokens, vocab] logits are ever held whole.
 */
final class LogProbs {
    private final DecoderForward f;
    private final int block;

    /** {@code block}: vocabulary rows read and projected at a time. */
    LogProbs(DecoderForward f, int block) {
        this.f = f;
        this.block = block;
    }

    double[][][] compute(List<Batch> batches, List<float[][]> states) {
        DecoderConfig cfg = f.config();
        Weights w = f.weights();
        boolean tied = cfg.tiedEmbeddings() || !w.has("lm_head.weight");
        ModelFolder.Located head = w.locate(tied ? DecoderForward.EMBED : "lm_head.weight", cfg.vocab(), cfg.hidden());
        int n = batches.size();
        double[][] max = new double[n][], sum = new double[n][], target = new double[n][];
        for (int i = 0; i < n; i++) {
            int rows = states.get(i).length;
            max[i] = new double[rows];
            Arrays.fill(max[i], Double.NEGATIVE_INFINITY);
            sum[i] = new double[rows];
            target[i] = new double[rows];
            Arrays.fill(target[i], Double.NaN);
        }
        for (int v0 = 0; v0 < cfg.vocab(); v0 += block) {
            int cols = Math.min(block, cfg.vocab() - v0);
            Linear rows = w.rows(head, v0, cols, cfg.hidden(), null);
            for (int i = 0; i < n; i++) {
                Batch b = batches.get(i);
                int t = b.length();
                float[][] logits = MatMul.apply(f.pool(), states.get(i), rows);
                double[] mx = max[i], sm = sum[i], tg = target[i];
                int first = v0;
                f.parallel(logits.length, m -> {
                    float[] z = logits[m];
                    double blockMax = Double.NEGATIVE_INFINITY;
                    for (float v : z) blockMax = Math.max(blockMax, v);
                    double newMax = Math.max(mx[m], blockMax);
                    double s = sm[m] * Math.exp(mx[m] - newMax);
                    for (float v : z) s += Math.exp(v - newMax);
                    sm[m] = s;
                    mx[m] = newMax;
                    int r = m / t, p = m % t;
                    if (p + 1 < t) {
                        int next = b.ids()[r][p + 1];
                        if (next >= first && next < first + z.length) tg[m] = z[next - first];
                    }
                });
            }
        }
        double[][][] out = new double[n][][];
        for (int i = 0; i < n; i++) {
            Batch b = batches.get(i);
            int t = b.length();
            out[i] = new double[b.rows()][Math.max(0, t - 1)];
            for (int r = 0; r < b.rows(); r++) {
                for (int p = 0; p + 1 < t; p++) {
                    int m = r * t + p;
                    boolean real = b.mask()[r][p] == 1 && b.mask()[r][p + 1] == 1;
                    out[i][r][p] = real ? target[i][m] - (max[i][m] + Math.log(sum[i][m])) : Double.NaN;
                }
            }
        }
        return out;
    }
}
