package org.mergeengine.plan;

import java.util.List;
import java.util.Map;
import org.mergeengine.config.MergeConfig;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.ShardLayout;
import org.mergeengine.methods.MergeMethod;

/**
 * Everything a merge will do, decided from the config and the input headers before any tensor
 * data is read: every output tensor with its inputs and parameters (in the order the engine runs
 * them, by input file and offset so the disk streams), the output shards, and the output
 * folder's other files ({@link OutputFiles}). Same config and inputs give the same plan and the same bytes.
 * {@code modules} maps each output tensor to its module (mergekit's names: default,
 * text_decoder, vision_tower, ...); {@code notes} say what a plan decided that the config did not
 * spell out (a module copied whole from one model), for -v.
 */
public record MergePlan(MergeConfig config, MergeMethod method, List<PlannedTensor> tensors, ShardLayout layout,
                        OutputFiles files, ModelFolder donor, Map<String, ModelFolder> models, int outputLayers,
                        List<String> warnings, Map<String, String> modules, List<String> notes) {

    public long inputBytes() {
        long b = 0;
        for (PlannedTensor t : tensors) b += t.inputBytes();
        return b;
    }

    public long outputBytes() {
        return layout.totalSize();
    }

    public PlannedTensor largest() {
        PlannedTensor best = null;
        for (PlannedTensor t : tensors) if (best == null || t.numel() > best.numel()) best = t;
        return best;
    }
}
