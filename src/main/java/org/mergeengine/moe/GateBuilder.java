package org.mergeengine.moe;

import java.util.ArrayList;
import java.util.List;
import org.mergeengine.config.ConfigException;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.TensorInfo;
import org.mergeengine.tensor.Convert;
import org.mergeengine.tokenize.PromptTokenizer;

/**
 * Router rows for a config, mode by mode. The rows are {@link #need}'s experts: the routed ones,
 * then the shared ones when any shared expert has prompts or the gates are random. Each prompt
 * list (an expert's positives, or its negatives) is one batch.
 */
public final class GateBuilder {
    private GateBuilder() {}

    /** The gates, their dtype (bf16 for the hidden modes, as mergekit computes them there, else float32) and the generator after them. */
    public record Gates(float[][][] rows, DType dtype, TorchRandom after) {}

    public static List<MoeConfig.Expert> need(MoeConfig cfg) {
        List<MoeConfig.Expert> n = new ArrayList<>(cfg.experts());
        if (cfg.randomGates() || cfg.sharedExperts().stream().anyMatch(e -> !e.positivePrompts().isEmpty())) n.addAll(cfg.sharedExperts());
        return n;
    }

    public static Gates random(MoeConfig cfg, int layers, int hidden, long seed) {
        TorchRandom rng = new TorchRandom(seed);
        int n = need(cfg).size();
        float[][][] g = cfg.gateMode().equals("random") ? GateMath.random(rng, layers, n, hidden) : GateMath.uniform(rng, layers, n, hidden);
        return new Gates(g, DType.F32, rng);
    }

    /** cheap_embed: the base's model.embed_tokens.weight rows of the prompts' tokens; the same row for every layer. */
    public static Gates cheapEmbed(MoeConfig cfg, ModelFolder base, PromptTokenizer tok, int layers, long seed) {
        ModelFolder.Located emb = base.tensor("model.embed_tokens.weight");
        if (emb == null) {
            throw new ConfigException("base_model", cfg.baseModel() + " has no tensor model.embed_tokens.weight, which gate_mode: cheap_embed reads");
        }
        TensorInfo info = emb.info();
        int vocab = (int) info.shape()[0], hidden = (int) info.shape()[1];
        GateMath.Rows rows = id -> {
            if (id < 0 || id >= vocab) throw new ConfigException("base_model", "token id " + id + " is outside the embedding matrix (" + vocab + " rows)");
            float[] r = new float[hidden];
            int es = info.dtype().size();
            Convert.decode(info.dtype(), emb.file().read(info, (long) id * hidden * es, hidden * es), r, 0, hidden);
            return r;
        };
        List<MoeConfig.Expert> need = need(cfg);
        float[][][] g = new float[layers][need.size()][];
        for (int n = 0; n < need.size(); n++) {
            MoeConfig.Expert x = need.get(n);
            PromptTokenizer.Batch pos = tok.batch(x.positivePrompts());
            float[] v = GateMath.cheapEmbed(rows, hidden, pos.ids(), pos.mask());
            if (!x.negativePrompts().isEmpty()) {
                PromptTokenizer.Batch neg = tok.batch(x.negativePrompts());
                v = GateMath.subtract(v, GateMath.cheapEmbed(rows, hidden, neg.ids(), neg.mask()), false);
            }
            v = GateMath.normalize(v, false);
            for (int l = 0; l < layers; l++) g[l][n] = v;
        }
        return new Gates(g, DType.F32, new TorchRandom(seed));
    }

    /**
     * hidden / hidden_last (the last position of each prompt) and hidden_avg (the mean over all
     * positions, padding included): the mean over a batch's prompts of the residual stream entering
     * each layer; negatives subtracted; each layer's row normalised. All batches run in one pass.
     */
    public static Gates hidden(MoeConfig cfg, PromptTokenizer tok, HiddenStates forward, long seed) {
        boolean last = !cfg.gateMode().equals("hidden_avg");
        List<MoeConfig.Expert> need = need(cfg);
        List<PromptTokenizer.Batch> batches = new ArrayList<>();
        int[] posBatch = new int[need.size()], negBatch = new int[need.size()];
        for (int n = 0; n < need.size(); n++) {
            MoeConfig.Expert x = need.get(n);
            posBatch[n] = batches.size();
            batches.add(tok.batch(x.positivePrompts()));
            negBatch[n] = -1;
            if (!x.negativePrompts().isEmpty()) {
                negBatch[n] = batches.size();
                batches.add(tok.batch(x.negativePrompts()));
            }
        }
        int layers = forward.numLayers();
        float[][][] reduced = new float[batches.size()][layers][];
        forward.run(batches, (b, l, h) -> reduced[b][l] = GateMath.hiddenReduce(h, last));
        float[][][] g = new float[layers][need.size()][];
        for (int l = 0; l < layers; l++) {
            for (int n = 0; n < need.size(); n++) {
                float[] v = reduced[posBatch[n]][l];
                if (negBatch[n] >= 0) v = GateMath.subtract(v, reduced[negBatch[n]][l], true);
                g[l][n] = GateMath.normalize(v, true);
            }
        }
        return new Gates(g, DType.BF16, new TorchRandom(seed));
    }
}
