package org.mergeengine.moe;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.mergeengine.MergeException;
import org.mergeengine.forward.Batch;
import org.mergeengine.forward.DecoderForward;
import org.mergeengine.tokenize.PromptTokenizer;

/** The hidden gate modes' forward pass: the base run layer by layer (one layer's weights in memory at a time). */
public final class ForwardHiddenStates implements HiddenStates, AutoCloseable {
    private final DecoderForward forward;

    private ForwardHiddenStates(DecoderForward forward) {
        this.forward = forward;
    }

    public static ForwardHiddenStates open(Path modelDir, int lanes) {
        try {
            return new ForwardHiddenStates(DecoderForward.open(modelDir, lanes));
        } catch (IOException e) {
            throw MergeException.user(modelDir + ": cannot open the base model for its forward pass (" + e.getMessage() + ")");
        }
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
