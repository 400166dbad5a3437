package org.mergeengine.moe;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.mergeengine.formats.DType;
import org.mergeengine.tensor.Convert;
import org.mergeengine.tensor.Svd;

/**
 * Router rows, mode by mode, as mergekit-moe computes them: {@code G[l][n][h]} for layer l and
 * the n-th routed (then shared) expert. The hidden modes post-process in bfloat16 (mergekit runs
 * the base in bf16): every reduction sums in float32 and rounds once, every elementwise step
 * rounds its result.
 */
public final class GateMath {
    private GateMath() {}

    /** gate_mode random: one standard-normal draw of [L, N, H], not normalised. */
    public static float[][][] random(TorchRandom rng, int layers, int rows, int hidden) {
        float[] d = rng.randn(Math.multiplyExact(Math.multiplyExact(layers, rows), hidden));
        return reshape(d, layers, rows, hidden);
    }

    /** gate_mode uniform_random: U(-s, s) with s = sqrt(1/H), nn.Linear's default init, computed as ((u·2)·s) − s in float32. */
    public static float[][][] uniform(TorchRandom rng, int layers, int rows, int hidden) {
        float[] d = rng.rand(Math.multiplyExact(Math.multiplyExact(layers, rows), hidden));
        float s = (float) Math.sqrt(1.0 / hidden);
        for (int i = 0; i < d.length; i++) d[i] = d[i] * 2f * s - s;
        return reshape(d, layers, rows, hidden);
    }

    static float[][][] reshape(float[] d, int layers, int rows, int hidden) {
        float[][][] g = new float[layers][rows][hidden];
        int k = 0;
        for (int l = 0; l < layers; l++) for (int n = 0; n < rows; n++) for (int h = 0; h < hidden; h++) g[l][n][h] = d[k++];
        return g;
    }

    /** An embedding matrix's rows, read on demand (the vocabulary need not be in memory). */
    public interface Rows {
        float[] row(int id);
    }

    /**
     * cheap_embed's vector of one prompt batch: the embedding rows of the real (unmasked) tokens,
     * summed in float32 over each prompt's tokens, then over the prompts, divided by its norm.
     */
    public static float[] cheapEmbed(Rows embedding, int hidden, int[][] ids, int[][] mask) {
        float[] total = new float[hidden];
        for (int b = 0; b < ids.length; b++) {
            float[] row = new float[hidden];
            for (int t = 0; t < ids[b].length; t++) {
                if (mask[b][t] == 0) continue;
                float[] e = embedding.row(ids[b][t]);
                for (int h = 0; h < hidden; h++) row[h] += e[h];
            }
            for (int h = 0; h < hidden; h++) total[h] += row[h];
        }
        return normalize(total, false);
    }

    /** v / max(|v|, 1e-8), in float32 (or rounded to bf16 at each step when {@code bf16}). */
    public static float[] normalize(float[] v, boolean bf16) {
        double ss = 0;
        for (float x : v) ss += (double) x * x;
        float norm = Math.max((float) Math.sqrt(ss), 1e-8f);
        if (bf16) norm = bf(norm);
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) out[i] = bf16 ? bf(v[i] / norm) : v[i] / norm;
        return out;
    }

    public static float[] subtract(float[] a, float[] b, boolean bf16) {
        float[] out = new float[a.length];
        for (int i = 0; i < a.length; i++) out[i] = bf16 ? bf(a[i] - b[i]) : a[i] - b[i];
        return out;
    }

    static float bf(float v) {
        return Convert.roundTo(DType.BF16, v);
    }

    /**
     * One prompt batch's hidden-mode vector at one layer from the residual stream entering it
     * ({@code hidden[b][t][h]}, rounded to bf16 as the bf16 model holds it): {@code last} takes the
     * last position of every row (a real token, the batch being left-padded), otherwise the mean
     * over all positions, padding included, as mergekit does; then the mean over the prompts.
     */
    public static float[] hiddenReduce(float[][][] hidden, boolean last) {
        int batch = hidden.length, hs = hidden[0][0].length;
        float[] acc = new float[hs];
        for (int b = 0; b < batch; b++) {
            float[][] rows = hidden[b];
            float[] v;
            if (last) {
                v = new float[hs];
                for (int h = 0; h < hs; h++) v[h] = bf(rows[rows.length - 1][h]);
            } else {
                float[] s = new float[hs];
                for (float[] r : rows) for (int h = 0; h < hs; h++) s[h] += bf(r[h]);
                v = new float[hs];
                for (int h = 0; h < hs; h++) v[h] = bf(s[h] / rows.length);
            }
            for (int h = 0; h < hs; h++) acc[h] += v[h];
        }
        float[] out = new float[hs];
        for (int h = 0; h < hs; h++) out[h] = bf(acc[h] / batch);
        return out;
    }

    /** σmax/σmin of each layer's [N, H] gate matrix; infinite when N > H or a row depends on the others. */
    public static double[] conditionNumbers(float[][][] gates) {
        double[] out = new double[gates.length];
        for (int l = 0; l < gates.length; l++) {
            int n = gates[l].length, h = gates[l][0].length;
            if (n > h) {
                out[l] = Double.POSITIVE_INFINITY;
                continue;
            }
            float[] a = new float[n * h];
            for (int i = 0; i < n; i++) System.arraycopy(gates[l][i], 0, a, i * h, h);
            double[] s = Svd.exact(a, n, h).s();
            double max = 0, min = Double.POSITIVE_INFINITY;
            for (double x : s) {
                max = Math.max(max, x);
                min = Math.min(min, x);
            }
            // below float32 resolution relative to the largest value, a singular value is zero
            out[l] = min <= max * 1e-7 ? Double.POSITIVE_INFINITY : max / min;
        }
        return out;
    }

    /** mergekit-moe's warning for layers whose gate matrix has a condition number over 5, or null. */
    public static String degenerateWarning(double[] conditionNumbers) {
        List<Integer> bad = new ArrayList<>();
        for (int l = 0; l < conditionNumbers.length; l++) if (conditionNumbers[l] > 5.0) bad.add(l);
        if (bad.isEmpty()) return null;
        String which;
        if (bad.size() == 1) which = "layer " + bad.get(0) + " has";
        else if (bad.size() == 2) which = "layers " + bad.get(0) + " and " + bad.get(1) + " have";
        else if (bad.size() == conditionNumbers.length) which = "ALL layers have";
        else {
            StringBuilder sb = new StringBuilder("layers ");
            for (int i = 0; i < bad.size() - 1; i++) sb.append(bad.get(i)).append(", ");
            which = sb.append("and ").append(bad.get(bad.size() - 1)).append(" have").toString();
        }
        return String.format(Locale.ROOT, "%s degenerate routing parameters - your prompts may be too similar. "
                + "One or more experts will be underutilized in your model.", which);
    }
}
