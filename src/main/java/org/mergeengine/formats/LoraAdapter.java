package org.mergeengine.formats;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * A PEFT LoRA adapter folder: adapter_config.json and adapter_model.safetensors. Read from the
 * headers only: which base tensors get a low-rank update (and its scale), and which are replaced
 * whole (modules_to_save).
 */
public final class LoraAdapter implements AutoCloseable {
    static final String PREFIX = "base_model.model.";

    /** A low-rank update of base tensor {@code <module>.weight}. */
    public record Update(String module, TensorInfo a, TensorInfo b, float scale, boolean transposed) {}

    private final Path dir;
    private final Path root;
    private final TensorFile file;
    private final Map<String, Update> updates;
    private final Map<String, TensorInfo> replacements;
    private final boolean tokenizer;

    private LoraAdapter(Path dir, Path root, TensorFile file, Map<String, Update> updates, Map<String, TensorInfo> replacements, boolean tokenizer) {
        this.dir = dir;
        this.root = root;
        this.file = file;
        this.updates = updates;
        this.replacements = replacements;
        this.tokenizer = tokenizer;
    }

    public static LoraAdapter open(Path dir) {
        return open(dir, dir);
    }

    /** An adapter folder whose files (symlinks followed) must lie inside {@code root}: the folder, or a hub snapshot's repository folder. */
    public static LoraAdapter open(Path dir, Path root) {
        Path realRoot = ModelFolder.realRoot(root);
        Path cfgFile = dir.resolve("adapter_config.json");
        Path cfgReal = ModelFolder.resolveInside(dir, "adapter_config.json", realRoot);
        if (cfgReal == null || !Files.isRegularFile(cfgReal)) {
            throw new FormatException(dir + ": not a LoRA adapter folder: adapter_config.json is missing");
        }
        ObjectNode cfg = Json.readObject(cfgReal);
        Path weights = dir.resolve("adapter_model.safetensors");
        Path real = ModelFolder.resolveInside(dir, "adapter_model.safetensors", realRoot);
        if (real == null || !Files.isRegularFile(real)) {
            weights = dir.resolve("adapter_model.bin");
            real = ModelFolder.resolveInside(dir, "adapter_model.bin", realRoot);
        }
        if (real == null || !Files.isRegularFile(real)) throw new FormatException(dir + ": neither adapter_model.safetensors nor adapter_model.bin is there");
        String type = cfg.path("peft_type").asText("LORA");
        if (!type.equalsIgnoreCase("LORA")) throw new FormatException(cfgFile + ": peft_type " + type + " is not supported (only LORA)");
        if (cfg.path("use_dora").asBoolean(false)) throw new FormatException(cfgFile + ": DoRA adapters (use_dora: true) are not supported");
        if (!cfg.has("r") || !cfg.get("r").isIntegralNumber() || !cfg.get("r").canConvertToInt() || cfg.get("r").asInt() <= 0) {
            throw new FormatException(cfgFile + ": \"r\" must be a positive integer" + (cfg.has("r") ? ", found " + cfg.get("r").asText() : ""));
        }
        int r = cfg.get("r").asInt();
        double alpha = cfg.has("lora_alpha") ? cfg.get("lora_alpha").asDouble() : r;
        boolean rs = cfg.path("use_rslora").asBoolean(false);
        boolean fanInFanOut = cfg.path("fan_in_fan_out").asBoolean(false);
        Map<String, Double> rankPattern = patterns(cfg.get("rank_pattern")), alphaPattern = patterns(cfg.get("alpha_pattern"));

        TensorFile f = weights.toString().endsWith(".bin") ? TorchBinFile.open(weights) : SafetensorsFile.open(weights);
        boolean ok = false;
        try {
            Map<String, TensorInfo[]> pairs = new LinkedHashMap<>();
            Map<String, Boolean> embedding = new LinkedHashMap<>();
            Map<String, TensorInfo> replacements = new LinkedHashMap<>();
            for (TensorInfo t : f.tensors().values()) {
                String n = t.name();
                if (!n.startsWith(PREFIX)) throw new FormatException(weights + ": tensor '" + n + "' does not start with '" + PREFIX + "', so it maps onto no base tensor");
                String rest = n.substring(PREFIX.length()).replace(".default.", ".");
                if (rest.endsWith(".default")) rest = rest.substring(0, rest.length() - 8);
                int ab = -1;
                String module = null;
                boolean emb = false;
                for (String[] suffix : new String[][] {{".lora_A.weight", "0", ""}, {".lora_B.weight", "1", ""}, {".lora_embedding_A", "0", "e"}, {".lora_embedding_B", "1", "e"}}) {
                    if (rest.endsWith(suffix[0])) {
                        module = rest.substring(0, rest.length() - suffix[0].length());
                        ab = Integer.parseInt(suffix[1]);
                        emb = !suffix[2].isEmpty();
                    }
                }
                if (module != null) {
                    if (t.rank() != 2) throw new FormatException(weights + ": '" + n + "' must be a matrix, it is " + t.shapeString());
                    pairs.computeIfAbsent(module, k -> new TensorInfo[2])[ab] = t;
                    embedding.put(module, emb);
                } else if (rest.contains(".lora_")) {
                    throw new FormatException(weights + ": '" + n + "' is a LoRA tensor of a kind this version does not apply (lora_bias, magnitude vectors)");
                } else {
                    replacements.put(rest.replace(".modules_to_save.", "."), t); // a modules_to_save tensor: replaces the base's
                }
            }
            Map<String, Update> updates = new LinkedHashMap<>();
            for (Map.Entry<String, TensorInfo[]> e : pairs.entrySet()) {
                String module = e.getKey();
                TensorInfo a = e.getValue()[0], b = e.getValue()[1];
                if (a == null || b == null) {
                    throw new FormatException(weights + ": module '" + module + "' has lora_" + (a == null ? "B" : "A") + " but no lora_" + (a == null ? "A" : "B"));
                }
                if (a.shape()[0] != b.shape()[1]) {
                    throw new FormatException(weights + ": rank mismatch in '" + module + "': " + a.name() + " is " + a.shapeString()
                            + " and " + b.name() + " is " + b.shapeString() + " (A is [r, in], B is [out, r])");
                }
                int rank = (int) a.shape()[0];
                Double rp = match(rankPattern, module);
                int want = rp != null ? rp.intValue() : r;
                if (rank != want) {
                    throw new FormatException(weights + ": '" + a.name() + "' has rank " + rank + " but adapter_config.json gives module '" + module + "' r = " + want);
                }
                Double ap = match(alphaPattern, module);
                double al = ap != null ? ap : alpha;
                float scale = (float) (rs ? al / Math.sqrt(want) : al / want);
                boolean transposed = embedding.get(module) || fanInFanOut;
                updates.put(module + ".weight", new Update(module, a, b, scale, transposed));
            }
            boolean tok = false;
            for (String t : List.of("tokenizer.json", "tokenizer.model")) {
                Path p = ModelFolder.resolveInside(dir, t, realRoot);
                tok |= p != null && Files.isRegularFile(p);
            }
            ok = true;
            return new LoraAdapter(dir, realRoot, f, updates, replacements, tok);
        } finally {
            if (!ok) f.close();
        }
    }

    private static Map<String, Double> patterns(JsonNode n) {
        Map<String, Double> m = new LinkedHashMap<>();
        if (n == null || !n.isObject()) return m;
        for (Iterator<Map.Entry<String, JsonNode>> it = n.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            m.put(e.getKey(), e.getValue().asDouble());
        }
        return m;
    }

    /** PEFT's rule: a pattern key applies to a module whose name is the key or ends with "." + key (keys may be regexes). */
    static Double match(Map<String, Double> patterns, String module) {
        List<String> keys = new ArrayList<>(patterns.keySet());
        for (String k : keys) {
            boolean hit;
            try {
                hit = Pattern.compile("(.*\\.)?" + k + "$").matcher(module).matches();
            } catch (PatternSyntaxException e) {
                hit = module.equals(k) || module.endsWith("." + k);
            }
            if (hit) return patterns.get(k);
        }
        return null;
    }

    public Path dir() { return dir; }
    /** The real folder every file of this adapter must resolve inside. */
    public Path root() { return root; }
    public TensorFile file() { return file; }
    /** Low-rank updates by target base tensor name. */
    public Map<String, Update> updates() { return updates; }
    /** Whole-tensor replacements (modules_to_save) by base tensor name. */
    public Map<String, TensorInfo> replacements() { return replacements; }
    public boolean hasTokenizer() { return tokenizer; }

    @Override
    public void close() {
        file.close();
    }
}
