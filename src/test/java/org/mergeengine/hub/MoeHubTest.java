package org.mergeengine.hub;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.formats.DType;
import org.mergeengine.tools.SyntheticModel;

/** `moe` with hub models: checked from headers first (a dry run downloads no weight), then built like local ones. */
class MoeHubTest {
    @TempDir
    Path tmp;

    int run(FakeHub hub, Path cfg, Path out, Path cache, String... extra) throws Exception {
        String java = ProcessHandle.current().info().command().orElse("java");
        List<String> cmd = new ArrayList<>(List.of(java, "-cp", System.getProperty("java.class.path"), "org.mergeengine.cli.Main",
                "moe", cfg.toString(), out.toString(), "--quiet", "--cache-dir", cache.toString()));
        cmd.addAll(List.of(extra));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().put("HF_ENDPOINT", hub.url());
        pb.environment().remove("HF_TOKEN");
        pb.environment().remove("HF_HUB_OFFLINE");
        return pb.redirectErrorStream(true).redirectOutput(tmp.resolve("log-" + System.nanoTime()).toFile()).start().waitFor();
    }

    @Test
    void hubExpertsAreCheckedFromHeadersThenDownloadedAndGiveTheLocalBytes() throws Exception {
        SyntheticModel.Spec s = SyntheticModel.Spec.tiny();
        Path models = tmp.resolve("models");
        SyntheticModel.write(models.resolve("base"), s, DType.BF16, 1, 1, 0, 0);
        SyntheticModel.write(models.resolve("e1"), s, DType.BF16, 1, 2, 0.2, 0);
        SyntheticModel.write(models.resolve("e2"), s, DType.BF16, 1, 3, 0.2, 60_000);
        String yaml = "base_model: BASE\ngate_mode: random\nexperts:\n  - source_model: E1\n    noise_scale: 0.01\n  - source_model: E2\n";
        Path hubCfg = Files.writeString(tmp.resolve("hub.yaml"), yaml.replace("BASE", "org/base").replace("E1", "org/e1").replace("E2", "org/e2"));
        Path localCfg = Files.writeString(tmp.resolve("local.yaml"), yaml.replace("BASE", models.resolve("base").toString())
                .replace("E1", models.resolve("e1").toString()).replace("E2", models.resolve("e2").toString()));
        try (FakeHub hub = new FakeHub()) {
            for (String m : List.of("base", "e1", "e2")) hub.add("org/" + m, models.resolve(m));
            Path cache = tmp.resolve("cache");
            assertEquals(0, run(hub, hubCfg, tmp.resolve("dry"), cache, "--dry-run"));
            for (String m : List.of("base", "e1")) assertEquals(0, hub.downloads("org/" + m, "model.safetensors"), "a dry run reads headers only");
            assertEquals(0, run(hub, hubCfg, tmp.resolve("from-hub"), cache));
            assertEquals(0, run(hub, localCfg, tmp.resolve("local"), cache));
            assertEquals(1, hub.downloads("org/e1", "model.safetensors"));
        }
        assertArrayEquals(Files.readAllBytes(tmp.resolve("local/model.safetensors")), Files.readAllBytes(tmp.resolve("from-hub/model.safetensors")));
        assertTrue(Files.exists(tmp.resolve("from-hub/tokenizer.json")));
    }
}
