package org.mergeengine.moe;

import java.util.ArrayList;
import java.util.List;
import org.mergeengine.forward.Batch;
import org.mergeengine.forward.DecoderForward;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.tokenize.PromptTokenizer;

/** The hidden gate modes' forward pass: the base run layer by layer (one layer's weights in memory at a time). */
public final class ForwardHiddenStates implements HiddenStates, AutoCloseable {
    private final DecoderForward forward;

    private ForwardHiddenStates(DecoderForward forward) {
        this.forward = forward;
    }

    /** The forward pass over a model the caller opened (a local folder, a hub snapshot, a base with its LoRA applied). */
    public static ForwardHiddenStates open(ModelFolder model, int lanes) {
        return new ForwardHiddenStates(DecoderForward.open(model, lanes));
    }

    @Override public int numLayers() { return forward.numLayers(); }
    @Override public int hiddenSize() { return forward.hiddenSize(); }

    @Override
    public void run(List<PromptTokenizer.Batch> batches, Sink sink) {
        List<Batch> b = new ArrayList<>();
        for (PromptTokenizer.Batch x : batches) b.add(new Batch(x.ids(), x.mask()));
        forward.layerInputs(b, sink::accept);
    }

    @Override
    public void close() {
        forward.close();
    }
}
