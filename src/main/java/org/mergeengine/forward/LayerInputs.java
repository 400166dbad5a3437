package org.mergeengine.forward;

/**
 * Receives, for each batch and each decoder layer l in 0..L-1, the residual stream entering layer l
 * (l = 0: the token embeddings) as hidden[b][t][h], float32. Called layer by layer, batches in order.
 * The array is the receiver's to keep: the forward pass hands over a copy.
 */
public interface LayerInputs {
    void accept(int batch, int layer, float[][][] hidden);
}
