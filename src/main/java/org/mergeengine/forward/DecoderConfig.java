package org.mergeengine.forward;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Set;
import org.mergeengine.formats.FormatException;

/**
 * The shape of a Llama-family decoder read from config.json: Llama, Mistral, Qwen2 and Qwen3 share
 * one layer structure and differ in biases, q/k norms and sliding windows, which are read from the
 * config or the weights.
 */
public record DecoderConfig(String modelType, int hidden, int layers, int heads, int kvHeads, int headDim,
                            int intermediate, int vocab, double rmsEps, boolean tiedEmbeddings, Rope rope,
                            int slidingWindow, boolean[] slidingLayers, int maxPositions) {

    static final Set<String> FAMILIES = Set.of("llama", "mistral", "qwen2", "qwen3");

    /** Whether layer {@code l} attends only to the last {@link #slidingWindow} positions. */
    public boolean sliding(int l) {
        return slidingWindow > 0 && slidingLayers[l];
    }

    public static DecoderConfig parse(ObjectNode c, Path file) {
        if (c == null) throw new FormatException(file + ": missing; the forward pass needs the model's config.json");
        String type = text(c, "model_type");
        if (type == null || !FAMILIES.contains(type)) {
            throw new FormatException(file + ": model_type '" + type + "' is not supported by the forward pass (it runs "
                    + String.join(", ", FAMILIES.stream().sorted().toList()) + " decoders)");
        }
        String act = text(c, "hidden_act");
        if (act != null && !act.equals("silu") && !act.equals("swish")) {
            throw new FormatException(file + ": hidden_act '" + act + "' is not supported (the forward pass runs SwiGLU with silu)");
        }
        int hidden = positive(c, "hidden_size", file);
        int layers = positive(c, "num_hidden_layers", file);
        int heads = positive(c, "num_attention_heads", file);
        int kvHeads = c.hasNonNull("num_key_value_heads") ? positive(c, "num_key_value_heads", file) : heads;
        if (heads % kvHeads != 0) {
            throw new FormatException(file + ": num_attention_heads " + heads + " is not a multiple of num_key_value_heads " + kvHeads);
        }
        int headDim = c.hasNonNull("head_dim") ? positive(c, "head_dim", file) : hidden / heads;
        if (!c.hasNonNull("head_dim") && hidden % heads != 0) {
            throw new FormatException(file + ": hidden_size " + hidden + " is not a multiple of num_attention_heads " + heads + " and head_dim is not given");
        }
        if (headDim % 2 != 0) throw new FormatException(file + ": head_dim " + headDim + " is odd; rotary embeddings need an even head size");
        int inter = positive(c, "intermediate_size", file);
        int vocab = positive(c, "vocab_size", file);
        double eps = c.hasNonNull("rms_norm_eps") ? c.get("rms_norm_eps").asDouble() : 1e-6;
        boolean tied = c.path("tie_word_embeddings").asBoolean(false);
        Rope rope = Rope.fromConfig(c, headDim, file);

        int window = 0;
        boolean[] sliding = new boolean[layers];
        JsonNode sw = c.get("sliding_window");
        JsonNode types = c.get("layer_types");
        if (sw != null && sw.isNumber() && sw.asInt() > 0) {
            // Mistral slides in every layer; Qwen2/3 only when asked, and only from max_window_layers on.
            boolean use = type.equals("mistral") || (type.startsWith("qwen") && c.path("use_sliding_window").asBoolean(false));
            if (use && types != null && types.isArray()) {
                if (types.size() != layers) throw new FormatException(file + ": layer_types has " + types.size() + " entries for " + layers + " layers");
                for (int l = 0; l < layers; l++) sliding[l] = "sliding_attention".equals(types.get(l).asText());
            } else if (use) {
                int from = type.equals("mistral") ? 0 : c.path("max_window_layers").asInt(layers);
                for (int l = from; l < layers; l++) sliding[l] = true;
            }
            if (use) window = sw.asInt();
        }
        int maxPos = c.path("max_position_embeddings").asInt(0);
        return new DecoderConfig(type, hidden, layers, heads, kvHeads, headDim, inter, vocab, eps, tied, rope, window, sliding, maxPos);
    }

    static String text(ObjectNode c, String key) {
        JsonNode n = c.get(key);
        return n == null || n.isNull() ? null : n.asText().toLowerCase(Locale.ROOT);
    }

    static int positive(ObjectNode c, String key, Path file) {
        JsonNode n = c.get(key);
        if (n == null || !n.canConvertToInt() || n.asInt() <= 0) {
            throw new FormatException(file + ": " + key + " must be a positive integer" + (n == null ? " (missing)" : ", got " + n));
        }
        return n.asInt();
    }
}
