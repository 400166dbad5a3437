package org.mergeengine.formats;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * A model on the local disk: its config.json, and an index of every tensor (name to shard file and
 * header entry), built from the headers alone. Sharded models are read through
 * model.safetensors.index.json.
 */
public final class ModelFolder implements AutoCloseable {
    /** Files that make up a tokenizer, copied to the output from the donor model. */
    public static final List<String> TOKENIZER_FILES = List.of(
            "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer.model",
            "added_tokens.json", "merges.txt", "vocab.json", "chat_template.jinja", "chat_template.json",
            "generation_config.json");

    public record Located(SafetensorsFile file, TensorInfo info) {}

    private final Path dir;
    private final ObjectNode config;
    private final Map<String, Located> tensors;
    private final List<SafetensorsFile> files;

    private ModelFolder(Path dir, ObjectNode config, Map<String, Located> tensors, List<SafetensorsFile> files) {
        this.dir = dir;
        this.config = config;
        this.tensors = tensors;
        this.files = files;
    }

    public static ModelFolder open(Path dir) {
        if (!Files.isDirectory(dir)) throw new FormatException(dir + ": model folder does not exist");
        Path cfg = dir.resolve("config.json");
        ObjectNode config = Files.isRegularFile(cfg) ? Json.readObject(cfg) : null;
        Path index = dir.resolve("model.safetensors.index.json");
        Path single = dir.resolve("model.safetensors");
        List<SafetensorsFile> files = new ArrayList<>();
        Map<String, Located> tensors = new LinkedHashMap<>();
        boolean ok = false;
        try {
            if (Files.isRegularFile(index)) {
                JsonNode root = Json.read(index);
                JsonNode map = root.get("weight_map");
                if (map == null || !map.isObject()) throw new FormatException(index + ": has no \"weight_map\" object");
                Map<String, String> weightMap = new LinkedHashMap<>();
                TreeSet<String> shardNames = new TreeSet<>();
                for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> e = it.next();
                    if (!e.getValue().isTextual()) throw new FormatException(index + ": weight_map." + e.getKey() + " must be a file name");
                    String f = e.getValue().asText();
                    checkPlainFileName(index, e.getKey(), f);
                    weightMap.put(e.getKey(), f);
                    shardNames.add(f);
                }
                Map<String, SafetensorsFile> opened = new LinkedHashMap<>();
                for (String f : shardNames) {
                    Path p = dir.resolve(f);
                    if (!Files.isRegularFile(p)) throw new FormatException(index + " names shard " + f + ", which is missing from " + dir);
                    SafetensorsFile sf = SafetensorsFile.open(p);
                    files.add(sf);
                    opened.put(f, sf);
                }
                for (Map.Entry<String, String> e : weightMap.entrySet()) {
                    SafetensorsFile sf = opened.get(e.getValue());
                    TensorInfo ti = sf.tensors().get(e.getKey());
                    if (ti == null) throw new FormatException(index + " maps tensor '" + e.getKey() + "' to " + e.getValue() + ", which does not contain it");
                    tensors.put(e.getKey(), new Located(sf, ti));
                }
            } else if (Files.isRegularFile(single)) {
                SafetensorsFile sf = SafetensorsFile.open(single);
                files.add(sf);
                for (TensorInfo ti : sf.tensors().values()) tensors.put(ti.name(), new Located(sf, ti));
            } else if (Files.isRegularFile(dir.resolve("pytorch_model.bin")) || Files.isRegularFile(dir.resolve("pytorch_model.bin.index.json"))) {
                throw new FormatException(dir + ": holds only PyTorch .bin weights, which this version cannot read yet; convert them to safetensors first");
            } else {
                throw new FormatException(dir + ": no model.safetensors or model.safetensors.index.json found (is this a model folder?)");
            }
            ok = true;
        } finally {
            if (!ok) files.forEach(SafetensorsFile::close);
        }
        return new ModelFolder(dir, config, Collections.unmodifiableMap(tensors), Collections.unmodifiableList(files));
    }

    /** A shard name from an index must name a file in the same folder, nothing else. */
    static void checkPlainFileName(Path index, String tensor, String f) {
        if (f.isEmpty() || f.contains("/") || f.contains("\\") || f.equals("..") || f.equals(".") || f.contains("\0")) {
            throw new FormatException(index + ": weight_map." + tensor + " = '" + f + "' is not a plain file name in the model folder");
        }
    }

    public Path dir() { return dir; }
    /** The parsed config.json, or null when the folder has none. */
    public ObjectNode config() { return config; }
    public Map<String, Located> tensors() { return tensors; }
    public Located tensor(String name) { return tensors.get(name); }
    public List<SafetensorsFile> files() { return files; }

    public long totalBytes() {
        long n = 0;
        for (Located l : tensors.values()) n += l.info().byteSize();
        return n;
    }

    /** Index of a shard file within this model, to order reads by file and offset. */
    public int fileIndex(SafetensorsFile f) {
        return files.indexOf(f);
    }

    @Override
    public void close() {
        files.forEach(SafetensorsFile::close);
    }
}
