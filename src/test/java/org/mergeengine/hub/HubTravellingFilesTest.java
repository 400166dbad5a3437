package org.mergeengine.hub;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.api.MergeService;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.plan.Families;
import org.mergeengine.plan.PlanOptions;

/** A hub model's processor files and remote code travel into the output like a local model's. */
class HubTravellingFilesTest {
    @TempDir
    Path tmp;

    @Test
    void processorFilesAndAutoMapCodeComeFromTheHubRepository() throws Exception {
        Path m = Families.write(tmp.resolve("vlm"), "llava", 1);
        String cfg = Files.readString(m.resolve("config.json")).replace("\"architectures\"",
                "\"auto_map\": {\n    \"AutoModel\": \"modeling_vlm.VlmModel\"\n  },\n  \"architectures\"");
        Files.writeString(m.resolve("config.json"), cfg);
        Files.writeString(m.resolve("modeling_vlm.py"), "# remote code\n");
        try (FakeHub hub = new FakeHub()) {
            hub.add("org/vlm", m);
            HubSettings s = new HubSettings(URI.create(hub.url()), null, tmp.resolve("cache"), false, Duration.ofSeconds(10), 3, Duration.ofMillis(10));
            try (MergeService svc = new MergeService(s)) {
                svc.merge(ConfigParser.parse("merge_method: linear\nmodels:\n  - {model: org/vlm, parameters: {weight: 1}}\n"), List.of(tmp),
                        tmp.resolve("out"), PlanOptions.defaults(), MergeOptions.defaults().withWorkers(1)).join();
            }
        }
        Path out = tmp.resolve("out");
        assertEquals("# remote code\n", Files.readString(out.resolve("modeling_vlm.py")));
        assertEquals(Files.readString(m.resolve("preprocessor_config.json")), Files.readString(out.resolve("preprocessor_config.json")));
        assertTrue(Files.readString(out.resolve("config.json")).contains("\"AutoModel\": \"modeling_vlm.VlmModel\""));
    }
}
