package org.mergeengine.forward;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import org.mergeengine.formats.FormatException;

/**
 * Rotary position embeddings in the "rotate half" layout: dimension i of a head is paired with
 * i + d/2 and both are turned by the angle position · invFreq[i]. The frequencies follow the
 * config's rope_theta and rope_scaling (or transformers 5's rope_parameters): types default,
 * linear and llama3.
 */
public final class Rope {
    private final float[] invFreq;
    private final String type;

    Rope(float[] invFreq, String type) {
        this.invFreq = invFreq;
        this.type = type;
    }

    public String type() {
        return type;
    }

    /** A copy of the per-pair inverse frequencies (float32, as the reference computes them). */
    public float[] invFreq() {
        return invFreq.clone();
    }

    static Rope fromConfig(ObjectNode c, int headDim, Path file) {
        JsonNode params = c.get("rope_parameters");
        JsonNode scaling = params != null && params.isObject() ? params : c.get("rope_scaling");
        double theta = 10000.0;
        if (params != null && params.hasNonNull("rope_theta")) theta = params.get("rope_theta").asDouble();
        else if (c.hasNonNull("rope_theta")) theta = c.get("rope_theta").asDouble();
        if (c.hasNonNull("partial_rotary_factor") && c.get("partial_rotary_factor").asDouble() != 1.0) {
            throw new FormatException(file + ": partial_rotary_factor " + c.get("partial_rotary_factor") + " is not supported by the forward pass");
        }
        int half = headDim / 2;
        float[] inv = new float[half];
        for (int i = 0; i < half; i++) {
            // float32 like the reference: exponent 2i/d, power and reciprocal rounded to float.
            float exponent = (float) (2 * i) / headDim;
            inv[i] = (float) (1.0 / (float) Math.pow(theta, exponent));
        }
        String type = "default";
        if (scaling != null && scaling.isObject()) {
            JsonNode t = scaling.hasNonNull("rope_type") ? scaling.get("rope_type") : scaling.get("type");
            type = t == null ? "default" : t.asText();
            String where = file + ": " + (scaling == params ? "rope_parameters" : "rope_scaling");
            switch (type) {
                case "default":
                    break;
                case "linear": {
                    double factor = number(scaling, "factor", where);
                    for (int i = 0; i < half; i++) inv[i] = (float) (inv[i] / factor);
                    break;
                }
                case "llama3": {
                    double factor = number(scaling, "factor", where);
                    double low = number(scaling, "low_freq_factor", where);
                    double high = number(scaling, "high_freq_factor", where);
                    double original = number(scaling, "original_max_position_embeddings", where);
                    if (high <= low) throw new FormatException(where + ": high_freq_factor must exceed low_freq_factor");
                    // Long wavelengths (low frequencies) are slowed by `factor`, short ones kept, and the
                    // band between them blended linearly in original/wavelength.
                    double lowWave = original / low, highWave = original / high;
                    for (int i = 0; i < half; i++) {
                        double f = inv[i];
                        double wave = 2 * Math.PI / f;
                        double v;
                        if (wave < highWave) v = f;
                        else if (wave > lowWave) v = f / factor;
                        else {
                            double smooth = (original / wave - low) / (high - low);
                            v = (1 - smooth) * f / factor + smooth * f;
                        }
                        inv[i] = (float) v;
                    }
                    break;
                }
                default:
                    throw new FormatException(where + ": rope type '" + type + "' is not supported by the forward pass (default, linear, llama3 are)");
            }
        }
        return new Rope(inv, type);
    }

    private static double number(JsonNode n, String key, String where) {
        JsonNode v = n.get(key);
        if (v == null || !v.isNumber()) throw new FormatException(where + "." + key + " must be a number");
        return v.asDouble();
    }

    /** cos and sin tables [position][i] for positions 0..length-1, angles rounded to float32 first. */
    float[][][] tables(int length) {
        int half = invFreq.length;
        float[][] cos = new float[length][half], sin = new float[length][half];
        for (int p = 0; p < length; p++) {
            for (int i = 0; i < half; i++) {
                float angle = (float) p * invFreq[i];
                cos[p][i] = (float) Math.cos(angle);
                sin[p][i] = (float) Math.sin(angle);
            }
        }
        return new float[][][] {cos, sin};
    }

    /** Rotates one head vector {@code v[off .. off+2·half)} in place for position p. */
    static void apply(float[] v, int off, int half, float[] cos, float[] sin) {
        for (int i = 0; i < half; i++) {
            float a = v[off + i], b = v[off + half + i];
            v[off + i] = a * cos[i] - b * sin[i];
            v[off + half + i] = b * cos[i] + a * sin[i];
        }
    }
}
