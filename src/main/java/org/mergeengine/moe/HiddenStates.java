package org.mergeengine.moe;

import java.util.List;
import org.mergeengine.tokenize.PromptTokenizer;

/**
 * A forward pass of the base model as the hidden gate modes need it: for each prompt batch and
 * each decoder layer, the residual stream entering that layer (layer 0: the token embeddings).
 */
public interface HiddenStates {
    int numLayers();

    int hiddenSize();

    /** Runs every batch; {@code sink} gets {@code hidden[b][t][h]} for each (batch, layer). */
    void run(List<PromptTokenizer.Batch> batches, Sink sink);

    interface Sink {
        void accept(int batch, int layer, float[][][] hidden);
    }
}
