package org.mergeengine.multi;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A stage's name stands for its output inside modules: too. */
class MultiModulesTest {
    @TempDir
    Path tmp;

    @Test
    void aModuleMayUseAnEarlierStage() {
        MultiConfig mc = MultiConfig.parse("name: vision\nmerge_method: linear\nmodels: [{model: a, parameters: {weight: 1}}]\n---\n"
                + "merge_method: linear\nmodules:\n  text_decoder:\n    slices: [{sources: [{model: vision, layer_range: [0, 2]}]}]\n"
                + "  vision_tower:\n    models: [{model: vision, parameters: {weight: 1}}]\n", tmp, tmp.resolve("final"));
        MultiConfig.Stage last = mc.stages().get(1);
        assertEquals(Set.of("vision"), last.dependsOn());
        String out = tmp.resolve("vision").toAbsolutePath().toString();
        assertEquals(out, last.config().modules().get("vision_tower").models().get(0).model().path());
        assertEquals(out, last.config().modules().get("text_decoder").slices().get(0).sources().get(0).model().path());
    }
}
