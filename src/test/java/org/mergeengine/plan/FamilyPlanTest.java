package org.mergeengine.plan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.mergeengine.config.ConfigException;
import org.mergeengine.formats.Json;

/**
 * Planning merges of tiny models of real families: which input layer each output layer comes
 * from, each stack's t values, the output config.json and the files copied with the model.
 */
class FamilyPlanTest {
    @TempDir
    static Path dir;

    @BeforeAll
    static void models() throws Exception {
        for (String f : Families.ALL) {
            Families.write(dir.resolve(f).resolve("a"), f, 1);
            Families.write(dir.resolve(f).resolve("b"), f, 2);
        }
    }

    static List<String> families() {
        return Families.ALL;
    }

    static List<String> decoders() {
        return Families.ALL.stream().filter(f -> !f.equals("t5") && !f.equals("bert")).toList();
    }

    static String configOf(MergePlan plan) {
        return new String(plan.files().files("out", false, false).get("config.json"), StandardCharsets.UTF_8);
    }

    static PlannedTensor tensor(MergePlan plan, String name) {
        for (PlannedTensor t : plan.tensors()) if (t.name().equals(name)) return t;
        throw new AssertionError("no output tensor " + name);
    }

    /** Output layers by stack prefix: prefix -> layer -> t of that layer's tensors (all alike). */
    static Map<String, TreeMap<Integer, Double>> tByStack(MergePlan plan, Set<String> prefixes) {
        Map<String, TreeMap<Integer, Double>> out = new LinkedHashMap<>();
        for (PlannedTensor t : plan.tensors()) {
            for (String p : prefixes) {
                Matcher m = Pattern.compile("^" + Pattern.quote(p) + "(\\d+)\\.").matcher(t.name());
                if (!m.find()) continue;
                int layer = Integer.parseInt(m.group(1));
                double v = t.context().global("t");
                Double prev = out.computeIfAbsent(p, k -> new TreeMap<>()).put(layer, v);
                if (prev != null) assertEquals(prev, v, 1e-12, t.name() + ": tensors of one layer share its t");
            }
        }
        return out;
    }

    @ParameterizedTest
    @MethodSource("families")
    void aMergeOfTwoModelsKeepsEveryTensorNameShapeAndTheFilesThatTravel(String family) throws Exception {
        MergePlan plan = Families.plan(dir, "merge_method: slerp\nbase_model: " + family + "/a\nmodels:\n  - model: " + family + "/a\n  - model: "
                + family + "/b\nparameters: {t: 0.5}\n");
        JsonNode expected = Families.tensors(family);
        Set<String> names = new HashSet<>();
        for (PlannedTensor t : plan.tensors()) {
            names.add(t.name());
            JsonNode shape = expected.get(t.name()).get("shape");
            for (int i = 0; i < shape.size(); i++) assertEquals(shape.get(i).asLong(), t.shape()[i], t.name());
            assertEquals(2, t.inputs().size(), t.name());
            assertEquals(t.name(), t.inputs().get(1).source().info().name(), "merged with the same tensor of the other model");
        }
        Set<String> all = new HashSet<>();
        expected.fieldNames().forEachRemaining(all::add);
        assertEquals(all, names);
        Map<String, byte[]> files = plan.files().files("out", true, false);
        for (String f : Families.EXTRA_FILES) {
            byte[] b = Families.resource(family, f);
            if (b == null || f.equals("config.json")) continue;
            assertTrue(files.containsKey(f), family + " copies " + f);
            assertEquals(new String(b, StandardCharsets.UTF_8), new String(files.get(f), StandardCharsets.UTF_8));
        }
    }

    @ParameterizedTest
    @MethodSource("decoders")
    void aGradientRunsOverTheLanguageModelsLayers(String family) {
        MergePlan plan = Families.plan(dir, "merge_method: slerp\nbase_model: " + family + "/a\nmodels:\n  - model: " + family + "/a\n  - model: "
                + family + "/b\nparameters: {t: [0, 1]}\n");
        String prefix = mainPrefix(family);
        assertEquals(ramp(layers(family)), new ArrayList<>(tByStack(plan, Set.of(prefix)).get(prefix).values()));
        for (PlannedTensor t : plan.tensors()) {
            if (!t.name().matches(".*\\.\\d+\\..*")) assertEquals(0.0, t.context().global("t"), t.name() + " lies outside the stacks");
        }
    }

    @Test
    void eachStackOfAnEncoderDecoderGetsItsOwnGradient() {
        MergePlan plan = Families.plan(dir, "merge_method: slerp\nbase_model: t5/a\nmodels:\n  - model: t5/a\n  - model: t5/b\nparameters: {t: [0, 1]}\n");
        Map<String, TreeMap<Integer, Double>> t = tByStack(plan, Set.of("encoder.block.", "decoder.block."));
        assertEquals(List.of(0.0, 0.5, 1.0), new ArrayList<>(t.get("encoder.block.").values()));
        assertEquals(List.of(0.0, 1.0), new ArrayList<>(t.get("decoder.block.").values()));
        assertEquals(0.0, tensor(plan, "shared.weight").context().global("t"));
        assertEquals("encoder", plan.modules().get("encoder.block.1.layer.0.SelfAttention.q.weight"));
        assertEquals("decoder", plan.modules().get("decoder.final_layer_norm.weight"));
    }

    @ParameterizedTest
    @MethodSource("vlms")
    void aVisionLanguageModelsTowerHasItsOwnGradient(String family, String text, int textLayers, String vision, int visionLayers) {
        MergePlan plan = Families.plan(dir, "merge_method: slerp\nbase_model: " + family + "/a\nmodels:\n  - model: " + family + "/a\n  - model: "
                + family + "/b\nparameters: {t: [0, 1]}\n");
        Map<String, TreeMap<Integer, Double>> t = tByStack(plan, Set.of(text, vision));
        assertEquals(ramp(textLayers), new ArrayList<>(t.get(text).values()));
        assertEquals(ramp(visionLayers), new ArrayList<>(t.get(vision).values()));
        assertEquals("text_decoder", plan.modules().get(text + "0." + plan.tensors().stream().map(PlannedTensor::name)
                .filter(n -> n.startsWith(text + "0.")).findFirst().orElseThrow().substring((text + "0.").length())));
        assertTrue(plan.modules().entrySet().stream().anyMatch(e -> e.getKey().startsWith(vision) && e.getValue().equals("vision_tower")));
    }

    static List<Object[]> vlms() {
        return List.of(new Object[] {"gemma3-vlm", "language_model.model.layers.", 6, "vision_tower.encoder.layers.", 2},
                new Object[] {"llava", "language_model.model.layers.", 4, "vision_tower.encoder.layers.", 3},
                new Object[] {"qwen2-vl", "model.layers.", 4, "visual.blocks.", 2});
    }

    static List<Double> ramp(int n) {
        List<Double> r = new ArrayList<>();
        for (int i = 0; i < n; i++) r.add(n > 1 ? i / (double) (n - 1) : 1.0);
        return r;
    }

    /** Passthrough of a[0, 3) and b[n-2, n): layer i of the output from (model, layer). */
    @ParameterizedTest
    @MethodSource("decoders")
    void aPassthroughOfSlicesTakesEachLayerFromItsSource(String family) throws Exception {
        int n = layers(family);
        MergePlan plan = Families.plan(dir, "merge_method: passthrough\nslices:\n  - sources:\n    - {model: " + family + "/a, layer_range: [0, 3]}\n"
                + "  - sources:\n    - {model: " + family + "/b, layer_range: [" + (n - 2) + ", " + n + "]}\n");
        LayoutCheck lc = new LayoutCheck(plan);
        String prefix = mainPrefix(family);
        for (int i = 0; i < 5; i++) {
            String model = i < 3 ? family + "/a" : family + "/b";
            int src = i < 3 ? i : n - 2 + (i - 3);
            for (PlannedTensor t : lc.layer(prefix, i)) {
                assertEquals(1, t.inputs().size());
                assertEquals(model, t.inputs().get(0).model(), t.name());
                assertEquals(prefix + src + ".", t.inputs().get(0).source().info().name().substring(0, (prefix + src + ".").length()), t.name());
            }
            assertFalse(lc.layer(prefix, i).isEmpty(), "output layer " + i);
        }
        assertTrue(lc.layer(prefix, 5).isEmpty());
        // Everything outside the language model comes whole from the first slice's model.
        for (PlannedTensor t : plan.tensors()) {
            String module = plan.modules().get(t.name());
            if (!module.equals("default") && !module.equals("text_decoder")) assertEquals(family + "/a", t.inputs().get(0).model(), t.name());
        }
        assertTrue(configOf(plan).contains(countLine(family, 5)), configOf(plan));
    }

    @Test
    void aVisionTowerComesWholeFromTheBaseNotMixedWithTheLastSlicesNorms() {
        for (String base : new String[] {null, "b"}) {
            MergePlan plan = Families.plan(dir, "merge_method: passthrough\n" + (base == null ? "" : "base_model: gemma3-vlm/" + base + "\n")
                    + "slices:\n  - sources:\n    - {model: gemma3-vlm/a, layer_range: [0, 3]}\n"
                    + "  - sources:\n    - {model: gemma3-vlm/b, layer_range: [3, 6]}\n");
            String whole = "gemma3-vlm/" + (base == null ? "a" : base);
            int vision = 0;
            for (PlannedTensor t : plan.tensors()) {
                if (!t.name().startsWith("vision_tower.") && !t.name().startsWith("multi_modal_projector.")) continue;
                vision++;
                assertEquals(List.of(whole), t.inputs().stream().map(PlannedTensor.Input::model).toList(), t.name());
                assertEquals(t.name(), t.inputs().get(0).source().info().name());
            }
            assertTrue(vision > 20, "every vision tensor is planned");
            assertEquals("gemma3-vlm/b", tensor(plan, "language_model.model.norm.weight").inputs().get(0).model(), "the final norm from the last slice");
            assertTrue(plan.notes().stream().anyMatch(s -> s.contains("vision_tower") && s.contains(whole)), plan.notes().toString());
        }
    }

    /** Per-layer lists take the entry of the source layer; the rest of the text is the donor's, byte for byte. */
    @Test
    void slicingRewritesOnlyTheLayerCountAndThePerLayerLists() throws Exception {
        String base = new String(Families.resource("qwen2", "config.json"), StandardCharsets.UTF_8);
        // a: full, full, sliding, sliding. Output layers from a1, a2, a3, a0, a2.
        MergePlan plan = Families.plan(dir, "merge_method: passthrough\nslices:\n  - sources:\n    - {model: qwen2/a, layer_range: [1, 4]}\n"
                + "  - sources:\n    - {model: qwen2/b, layer_range: [0, 1]}\n  - sources:\n    - {model: qwen2/a, layer_range: [2, 3]}\n");
        String expected = base.replace("\"num_hidden_layers\": 4", "\"num_hidden_layers\": 5")
                .replace("\"layer_types\": [\n    \"full_attention\",\n    \"full_attention\",\n    \"sliding_attention\",\n    \"sliding_attention\"\n  ]",
                        "\"layer_types\": [\n    \"full_attention\",\n    \"sliding_attention\",\n    \"sliding_attention\",\n    \"full_attention\",\n    \"sliding_attention\"\n  ]");
        assertFalse(expected.equals(base));
        assertEquals(expected, configOf(plan));
    }

    @Test
    void aVisionLanguageModelsNestedListsAndCountAreSliced() throws Exception {
        String base = new String(Families.resource("gemma3-vlm", "config.json"), StandardCharsets.UTF_8);
        MergePlan plan = Families.plan(dir, "merge_method: passthrough\nslices:\n  - sources:\n    - {model: gemma3-vlm/a, layer_range: [3, 6]}\n"
                + "  - sources:\n    - {model: gemma3-vlm/b, layer_range: [4, 6]}\n");
        String s = "      \"sliding_attention\",\n", f = "      \"full_attention\"";
        String expected = base.replace("\"num_hidden_layers\": 6,\n    \"num_key_value_heads\"", "\"num_hidden_layers\": 5,\n    \"num_key_value_heads\"")
                .replace("\"layer_types\": [\n" + s + s + s + s + s + f + "\n    ]",
                        "\"layer_types\": [\n" + s + s + f + ",\n" + s + f + "\n    ]");
        assertFalse(expected.equals(base));
        assertEquals(expected, configOf(plan));
        assertTrue(configOf(plan).contains("\"num_hidden_layers\": 2,\n    \"patch_size\""), "the vision tower keeps its count");
    }

    @Test
    void aCountRepeatedAtTheRootIsSlicedThereToo() throws Exception {
        Path m = dir.resolve("vlm-root");
        Families.write(m, "gemma3-vlm", 4);
        String types = "[\"sliding_attention\", \"sliding_attention\", \"sliding_attention\", \"sliding_attention\", \"sliding_attention\", \"full_attention\"]";
        Files.writeString(m.resolve("config.json"), Files.readString(m.resolve("config.json"))
                .replace("\"boi_token_index\"", "\"layer_types\": " + types + ",\n  \"num_hidden_layers\": 6,\n  \"boi_token_index\""));
        JsonNode cfg = Json.MAPPER.readTree(configOf(Families.plan(dir, "merge_method: passthrough\nslices:\n"
                + "  - sources:\n    - {model: vlm-root, layer_range: [4, 6]}\n")));
        assertEquals(2, cfg.get("num_hidden_layers").asInt());
        assertEquals(2, cfg.get("text_config").get("num_hidden_layers").asInt());
        assertEquals("[\"sliding_attention\",\"full_attention\"]", cfg.get("layer_types").toString());
        assertEquals("[\"sliding_attention\",\"full_attention\"]", cfg.get("text_config").get("layer_types").toString());
        assertEquals(2, cfg.get("vision_config").get("num_hidden_layers").asInt());
    }

    @Test
    void listsOfLayerIndicesAreRenumbered() throws Exception {
        // mlp_only_layers: [1] (layer 1 is dense). Output from a1, a2, b0, b1: dense at 0 and 3.
        MergePlan plan = Families.plan(dir, "merge_method: passthrough\nslices:\n  - sources:\n    - {model: qwen3-moe/a, layer_range: [1, 3]}\n"
                + "  - sources:\n    - {model: qwen3-moe/b, layer_range: [0, 2]}\n");
        JsonNode cfg = Json.MAPPER.readTree(configOf(plan));
        assertEquals("[0,3]", cfg.get("mlp_only_layers").toString());
        assertEquals(4, cfg.get("num_hidden_layers").asInt());
        assertTrue(plan.tensors().stream().anyMatch(t -> t.name().equals("model.layers.3.mlp.gate_proj.weight")));
        assertTrue(plan.tensors().stream().anyMatch(t -> t.name().equals("model.layers.1.mlp.experts.0.gate_proj.weight")));
    }

    @Test
    void aListThatCannotBeMappedIsRefusedByName() throws Exception {
        Path m = dir.resolve("odd");
        Families.write(m, "llama", 3);
        String cfg = Files.readString(m.resolve("config.json")).replace("\"max_position_embeddings\"", "\"layer_scales\": [1, 2],\n  \"max_position_embeddings\"");
        Files.writeString(m.resolve("config.json"), cfg);
        ConfigException e = assertThrows(ConfigException.class, () -> Families.plan(dir, "merge_method: passthrough\nslices:\n"
                + "  - sources:\n    - {model: odd, layer_range: [0, 3]}\n"));
        assertTrue(e.getMessage().contains("layer_scales"), e.getMessage());
        // Unchanged layers need no mapping.
        assertTrue(configOf(Families.plan(dir, "merge_method: passthrough\nslices:\n  - sources:\n    - {model: odd, layer_range: [0, 4]}\n"))
                .contains("\"layer_scales\": [\n    1,\n    2\n  ]"));
    }

    @Test
    void slicesOnAnEncoderDecoderAskForModules() {
        ConfigException e = assertThrows(ConfigException.class, () -> Families.plan(dir, "merge_method: passthrough\nslices:\n"
                + "  - sources:\n    - {model: t5/a, layer_range: [0, 2]}\n"));
        assertTrue(e.getMessage().contains("modules:") && e.getMessage().contains("encoder"), e.getMessage());
    }

    @Test
    void modulesSliceEachStackOnItsOwn() throws Exception {
        MergePlan plan = Families.plan(dir, "merge_method: linear\nmodules:\n"
                + "  encoder:\n    slices:\n      - sources:\n          - {model: t5/a, layer_range: [0, 2], parameters: {weight: 0.25}}\n"
                + "          - {model: t5/b, layer_range: [0, 2], parameters: {weight: 0.75}}\n"
                + "  decoder:\n    models:\n      - {model: t5/b, parameters: {weight: 1.0}}\n"
                + "  shared:\n    models:\n      - {model: t5/a}\n      - {model: t5/b}\n    parameters: {weight: 0.5}\n");
        PlannedTensor enc0 = tensor(plan, "encoder.block.1.layer.0.SelfAttention.q.weight");
        assertEquals(List.of("t5/a", "t5/b"), enc0.inputs().stream().map(PlannedTensor.Input::model).toList());
        assertEquals(0.25, enc0.context().model("weight", 0));
        assertTrue(plan.tensors().stream().noneMatch(t -> t.name().startsWith("encoder.block.2.")));
        assertEquals(List.of("t5/b"), tensor(plan, "decoder.block.1.layer.2.DenseReluDense.wi.weight").inputs().stream().map(PlannedTensor.Input::model).toList());
        assertEquals(0.5, tensor(plan, "shared.weight").context().model("weight", 1));
        JsonNode cfg = Json.MAPPER.readTree(configOf(plan));
        assertEquals(2, cfg.get("num_layers").asInt());
        assertEquals(2, cfg.get("num_decoder_layers").asInt());

        ConfigException shifted = assertThrows(ConfigException.class, () -> Families.plan(dir, "merge_method: linear\nmodules:\n"
                + "  encoder:\n    slices:\n      - sources:\n          - {model: t5/a, layer_range: [0, 2], parameters: {weight: 0.5}}\n"
                + "          - {model: t5/b, layer_range: [1, 3], parameters: {weight: 0.5}}\n"
                + "  decoder:\n    models: [{model: t5/b, parameters: {weight: 1}}]\n  shared:\n    models: [{model: t5/b, parameters: {weight: 1}}]\n"));
        assertTrue(shifted.getMessage().startsWith("modules.encoder.slices[0].sources[1]") && shifted.getMessage().contains("relative_attention_bias")
                && shifted.getMessage().contains("only in some layers (layer 0)"), shifted.getMessage());
        ConfigException missing = assertThrows(ConfigException.class, () -> Families.plan(dir, "merge_method: linear\nmodules:\n"
                + "  encoder:\n    models: [{model: t5/a, parameters: {weight: 1}}]\n"));
        assertTrue(missing.getMessage().contains("decoder"), missing.getMessage());
        ConfigException unknown = assertThrows(ConfigException.class, () -> Families.plan(dir, "merge_method: linear\nmodules:\n"
                + "  vision_tower:\n    models: [{model: t5/a, parameters: {weight: 1}}]\n"));
        assertTrue(unknown.getMessage().startsWith("modules.vision_tower") || unknown.getMessage().contains("vision_tower"), unknown.getMessage());
    }

    @Test
    void modulesOfAVisionLanguageModelAreMergedEachByItsOwnConfig() throws Exception {
        MergePlan plan = Families.plan(dir, "merge_method: linear\nmodules:\n"
                + "  text_decoder:\n    slices:\n      - sources:\n          - {model: llava/a, layer_range: [0, 2]}\n"
                + "      - sources:\n          - {model: llava/b, layer_range: [2, 4]}\n    parameters: {weight: 1.0}\n"
                + "  vision_tower:\n    models:\n      - {model: llava/a, parameters: {weight: 0.3}}\n      - {model: llava/b, parameters: {weight: 0.7}}\n"
                + "  multi_modal_projector:\n    models:\n      - {model: llava/b, parameters: {weight: 1.0}}\n");
        PlannedTensor v = tensor(plan, "vision_tower.encoder.layers.2.mlp.fc1.weight");
        assertEquals(0.3, v.context().model("weight", 0));
        assertEquals(0.7, v.context().model("weight", 1));
        assertEquals(List.of("llava/b"), tensor(plan, "multi_modal_projector.linear_1.weight").inputs().stream().map(PlannedTensor.Input::model).toList());
        assertEquals("llava/b", tensor(plan, "language_model.model.layers.3.mlp.up_proj.weight").inputs().get(0).model());
        assertEquals("multi_modal_projector", plan.modules().get("multi_modal_projector.linear_2.bias"));
    }

    @Test
    void bertsVocabularyIsItsWordEmbeddingNotItsPositions() throws Exception {
        assertEquals(List.of(), Families.plan(dir, "merge_method: linear\nmodels:\n  - {model: bert/a, parameters: {weight: 1}}\n").warnings());
        assertTrue(ModelLayout.isVocabularyName("bert.embeddings.word_embeddings.weight"));
        assertFalse(ModelLayout.isVocabularyName("bert.embeddings.position_embeddings.weight"));
        assertFalse(ModelLayout.isVocabularyName("bert.embeddings.token_type_embeddings.weight"));
        assertFalse(ModelLayout.isVocabularyName("vision_tower.embeddings.patch_embedding.weight"));
    }

    static int layers(String family) {
        return switch (family) {
            case "gemma3-text", "gemma3-vlm" -> 6;
            default -> 4;
        };
    }

    static String mainPrefix(String family) {
        return switch (family) {
            case "gemma3-vlm", "llava" -> "language_model.model.layers.";
            case "gpt2" -> "transformer.h.";
            case "gpt-neox" -> "gpt_neox.layers.";
            default -> "model.layers.";
        };
    }

    static String countLine(String family, int n) {
        return switch (family) {
            case "gpt2" -> "\"n_layer\": " + n + ",";
            case "gemma3-vlm", "llava", "qwen2-vl" -> "    \"num_hidden_layers\": " + n + ",";
            default -> "\"num_hidden_layers\": " + n + ",";
        };
    }

    /** The planned tensors of output layer i of a stack. */
    record LayoutCheck(MergePlan plan) {
        List<PlannedTensor> layer(String prefix, int i) {
            List<PlannedTensor> out = new ArrayList<>();
            for (PlannedTensor t : plan.tensors()) if (t.name().startsWith(prefix + i + ".")) out.add(t);
            return out;
        }
    }
}
