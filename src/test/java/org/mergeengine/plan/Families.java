package org.mergeengine.plan;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.mergeengine.tensor.Convert;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.config.MergeConfig;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.SafetensorsWriter;

/**
 * Tiny models of real architecture families, made from committed fixtures: each family's
 * config.json and files as transformers saved them, and its tensors' names, shapes and dtypes
 * (scripts/families.py wrote them). The weights are random, drawn here from a seed.
 */
public final class Families {
    public static final List<String> ALL = List.of("llama", "mistral", "qwen2", "qwen2-tied", "qwen3", "qwen3-moe", "mixtral", "gemma2",
            "gemma3-text", "gemma3-vlm", "llava", "qwen2-vl", "phi3", "gpt2", "gpt-neox", "olmo", "olmo2", "t5", "bert");
    static final List<String> EXTRA_FILES = List.of("config.json", "generation_config.json", "preprocessor_config.json",
            "processor_config.json", "video_preprocessor_config.json");

    private Families() {}

    static byte[] resource(String family, String file) throws IOException {
        try (InputStream in = Families.class.getResourceAsStream("/families/" + family + "/" + file)) {
            return in == null ? null : in.readAllBytes();
        }
    }

    /** The family's tensors in file order: name to [dtype, shape]. */
    static JsonNode tensors(String family) throws IOException {
        return Json.MAPPER.readTree(resource(family, "tensors.json"));
    }

    /** Writes a model of the family into {@code dir}, its weights drawn from {@code seed}. */
    public static Path write(Path dir, String family, long seed) throws IOException {
        Files.createDirectories(dir);
        for (String f : EXTRA_FILES) {
            byte[] b = resource(family, f);
            if (b != null) Files.write(dir.resolve(f), b);
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        List<SafetensorsWriter.TensorData> data = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = tensors(family).fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            JsonNode shapeNode = e.getValue().get("shape");
            long[] shape = new long[shapeNode.size()];
            long n = 1;
            for (int i = 0; i < shape.length; i++) n *= (shape[i] = shapeNode.get(i).asLong());
            float[] v = new float[(int) n];
            for (int i = 0; i < v.length; i++) v[i] = (float) (rnd.nextDouble() * 2 - 1);
            data.add(Convert.tensorData(e.getKey(), DType.fromSafetensors(e.getValue().get("dtype").asText()), shape, v));
        }
        SafetensorsWriter.writeFile(dir.resolve("model.safetensors"), data);
        return dir;
    }

    static MergePlan plan(Path dir, String yaml) {
        MergeConfig cfg = ConfigParser.parse(yaml);
        return Planner.plan(cfg, new LocalModelResolver(List.of(dir)), PlanOptions.defaults());
    }
}
