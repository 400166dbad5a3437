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

    /**
     * Where a tensor's bytes are. {@code delta}, when set, is a LoRA update added on load
     * (W + scale · L·R), so an adapted model is never materialised.
     */
    public record Located(TensorFile file, TensorInfo info, LowRank delta) {
        public Located(TensorFile file, TensorInfo info) {
            this(file, info, null);
        }
    }

    /**
     * A low-rank update of a [rows, cols] tensor: element (i, j) gains scale · sum_k L[i,k] R[k,j].
     * For a Linear layer L = lora_B [out, r] and R = lora_A [r, in]; for an embedding (or
     * fan_in_fan_out) the update is transposed: L = lora_A^T and R = lora_B^T.
     */
    public record LowRank(TensorFile file, TensorInfo a, TensorInfo b, float scale, boolean transposed) {
        public int rank() {
            return (int) a.shape()[0];
        }
    }

    private final Path dir;
    private final Path root;
    private final Path tokenizerDir;
    private final Path tokenizerRoot;
    private final ObjectNode config;
    private final Map<String, Located> tensors;
    private final List<TensorFile> files;

    private ModelFolder(Path dir, Path root, ObjectNode config, Map<String, Located> tensors, List<TensorFile> files) {
        this(dir, root, dir, root, config, tensors, files);
    }

    private ModelFolder(Path dir, Path root, Path tokenizerDir, Path tokenizerRoot, ObjectNode config, Map<String, Located> tensors, List<TensorFile> files) {
        this.dir = dir;
        this.root = root;
        this.tokenizerDir = tokenizerDir;
        this.tokenizerRoot = tokenizerRoot;
        this.config = config;
        this.tensors = tensors;
        this.files = files;
    }

    public static ModelFolder open(Path dir) {
        return open(dir, dir);
    }

    /**
     * Opens a model folder whose files (symlinks followed) must all lie inside {@code root}: the
     * folder itself for a local model, the repository's cache folder for a hub snapshot (whose
     * files link to ../../blobs).
     */
    public static ModelFolder open(Path dir, Path root) {
        if (!Files.isDirectory(dir)) throw new FormatException(dir + ": model folder does not exist");
        Path realRoot = realRoot(root);
        for (String f : List.of("config.json", "model.safetensors.index.json", "model.safetensors", "pytorch_model.bin", "pytorch_model.bin.index.json")) {
            resolveInside(dir, f, realRoot);
        }
        Path cfg = dir.resolve("config.json");
        ObjectNode config = Files.isRegularFile(cfg) ? Json.readExactObject(cfg) : null;
        Path index = dir.resolve("model.safetensors.index.json");
        Path single = dir.resolve("model.safetensors");
        List<TensorFile> files = new ArrayList<>();
        Map<String, Located> tensors = new LinkedHashMap<>();
        boolean ok = false;
        try {
            Path binIndex = dir.resolve("pytorch_model.bin.index.json");
            Path bin = dir.resolve("pytorch_model.bin");
            boolean safetensors = Files.isRegularFile(index) || Files.isRegularFile(single);
            if (safetensors || Files.isRegularFile(binIndex)) {
                Path idx = Files.isRegularFile(index) ? index : Files.isRegularFile(binIndex) && !Files.isRegularFile(single) ? binIndex : null;
                if (idx != null) {
                    Map<String, String> weightMap = readIndex(idx);
                    Map<String, TensorFile> opened = new LinkedHashMap<>();
                    for (String f : new TreeSet<>(weightMap.values())) {
                        Path p = dir.resolve(f);
                        resolveInside(dir, f, realRoot);
                        if (!Files.isRegularFile(p)) throw new FormatException(idx + " names shard " + f + ", which is missing from " + dir);
                        TensorFile tf = f.endsWith(".bin") ? TorchBinFile.open(p) : SafetensorsFile.open(p);
                        files.add(tf);
                        opened.put(f, tf);
                    }
                    for (Map.Entry<String, String> e : weightMap.entrySet()) {
                        TensorFile tf = opened.get(e.getValue());
                        TensorInfo ti = tf.tensors().get(e.getKey());
                        if (ti == null) throw new FormatException(idx + " maps tensor '" + e.getKey() + "' to " + e.getValue() + ", which does not contain it");
                        tensors.put(e.getKey(), new Located(tf, ti));
                    }
                } else {
                    SafetensorsFile sf = SafetensorsFile.open(single);
                    files.add(sf);
                    for (TensorInfo ti : sf.tensors().values()) tensors.put(ti.name(), new Located(sf, ti));
                }
            } else if (Files.isRegularFile(bin)) {
                // Only PyTorch weights: read them with the restricted reader (nothing in the pickle is executed).
                TorchBinFile tf = TorchBinFile.open(bin);
                files.add(tf);
                for (TensorInfo ti : tf.tensors().values()) tensors.put(ti.name(), new Located(tf, ti));
            } else {
                throw new FormatException(dir + ": no model.safetensors, model.safetensors.index.json or pytorch_model.bin found (is this a model folder?)");
            }
            ok = true;
        } finally {
            if (!ok) files.forEach(TensorFile::close);
        }
        return new ModelFolder(dir, realRoot, config, Collections.unmodifiableMap(tensors), Collections.unmodifiableList(files));
    }

    /**
     * A model known from its config, index and shard headers alone (files not downloaded yet), for
     * planning. {@code shards} maps each shard file name to its header-only file.
     */
    public static ModelFolder fromHeaders(Path dir, ObjectNode config, Map<String, String> weightMap, Map<String, SafetensorsFile> shards) {
        return fromHeaders(dir, dir, config, weightMap, shards);
    }

    /** As {@link #fromHeaders(Path, ObjectNode, Map, Map)}, for a folder whose files must lie inside {@code root} (a hub repository's cache folder). */
    public static ModelFolder fromHeaders(Path dir, Path root, ObjectNode config, Map<String, String> weightMap, Map<String, SafetensorsFile> shards) {
        Map<String, Located> tensors = new LinkedHashMap<>();
        if (weightMap == null) {
            for (SafetensorsFile sf : shards.values()) for (TensorInfo ti : sf.tensors().values()) tensors.put(ti.name(), new Located(sf, ti));
        } else {
            for (Map.Entry<String, String> e : weightMap.entrySet()) {
                SafetensorsFile sf = shards.get(e.getValue());
                TensorInfo ti = sf == null ? null : sf.tensors().get(e.getKey());
                if (ti == null) throw new FormatException(dir + ": the index maps tensor '" + e.getKey() + "' to " + e.getValue() + ", which does not contain it");
                tensors.put(e.getKey(), new Located(sf, ti));
            }
        }
        return new ModelFolder(dir, realRoot(root), config, Collections.unmodifiableMap(tensors), List.<TensorFile>copyOf(shards.values()));
    }

    /** The weight_map of an index file, checked: tensor name to a plain shard file name. */
    public static Map<String, String> readIndex(Path index) {
        JsonNode root = Json.read(index);
        JsonNode map = root.get("weight_map");
        if (map == null || !map.isObject()) throw new FormatException(index + ": has no \"weight_map\" object");
        Map<String, String> weightMap = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getValue().isTextual()) throw new FormatException(index + ": weight_map." + e.getKey() + " must be a file name");
            checkPlainFileName(index, e.getKey(), e.getValue().asText());
            weightMap.put(e.getKey(), e.getValue().asText());
        }
        return weightMap;
    }

    /** The real path of a trusted root (symlinks resolved), which every file read from it must lie inside. */
    public static Path realRoot(Path root) {
        try {
            return root.toRealPath();
        } catch (java.io.IOException e) {
            throw new FormatException(root + ": cannot resolve (" + e.getMessage() + ")");
        }
    }

    /**
     * The one check for every file read from a model or adapter folder (weights, configs, tokenizer
     * files, chat templates, files copied to the output): file {@code name} of {@code dir}, its
     * symlinks followed, must resolve inside {@code root} (the folder itself, or for a hub snapshot
     * its repository's cache folder, whose blobs the snapshot links to). Returns the real path to read,
     * or null when there is no such file. A file that resolves elsewhere (a link to a token or
     * /etc/shadow) is refused, so that it is never read, let alone copied into an output.
     */
    public static Path resolveInside(Path dir, String name, Path root) {
        Path file = dir.resolve(name).normalize();
        if (Path.of(name).isAbsolute() || !file.startsWith(dir.normalize())) {
            throw new FormatException(dir + ": '" + name + "' is not a file name inside the folder");
        }
        if (!Files.exists(file, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return null;
        Path realRoot = realRoot(root);
        Path real;
        try {
            real = file.toRealPath();
        } catch (java.nio.file.NoSuchFileException e) {
            return null; // a link to nowhere: nothing to read
        } catch (java.io.IOException e) {
            throw new FormatException(file + ": cannot resolve (" + e.getMessage() + ")");
        }
        if (!real.startsWith(realRoot)) {
            throw new FormatException(file + " resolves to " + real + ", outside " + realRoot + "; symlinks out of a model folder are not followed");
        }
        return real;
    }

    /** The bytes of file {@code name} of {@code dir} after {@link #resolveInside}; null when it is absent or not a regular file. */
    public static byte[] readInside(Path dir, String name, Path root) {
        Path real = resolveInside(dir, name, root);
        if (real == null || !Files.isRegularFile(real)) return null;
        try {
            return Files.readAllBytes(real);
        } catch (java.io.IOException e) {
            throw new FormatException(dir.resolve(name) + ": cannot read (" + e.getMessage() + ")");
        }
    }

    /** File {@code name} of this model's folder, checked by {@link #resolveInside(Path, String, Path)}: its real path, or null when absent. */
    public Path resolveInside(String name) {
        return resolveInside(dir, name, root);
    }

    /** File {@code name} of the folder this model's tokenizer comes from (its adapter's, when the adapter ships one), checked the same way. */
    public Path resolveTokenizerFile(String name) {
        return resolveInside(tokenizerDir, name, tokenizerRoot);
    }

    /** The bytes of a tokenizer file (see {@link #resolveTokenizerFile}), or null when absent. */
    public byte[] readTokenizerFile(String name) {
        return readInside(tokenizerDir, name, tokenizerRoot);
    }

    /** A shard name from an index must name a file in the same folder, nothing else. */
    static void checkPlainFileName(Path index, String tensor, String f) {
        if (f.isEmpty() || f.contains("/") || f.contains("\\") || f.equals("..") || f.equals(".") || f.contains("\0")) {
            throw new FormatException(index + ": weight_map." + tensor + " = '" + f + "' is not a plain file name in the model folder");
        }
    }

    /**
     * A file that travels with the model (a processor config, remote code), or null when the folder
     * has none. Only a relative name inside the folder is read, and a file that resolves outside
     * the model's root is refused as the weights are.
     */
    public byte[] companionFile(String name) {
        if (name.isEmpty() || name.startsWith("/") || name.contains("\\") || name.contains("\0")
                || List.of(name.split("/")).stream().anyMatch(p -> p.equals("..") || p.equals(".") || p.isEmpty())) {
            throw new FormatException(dir + ": '" + name + "' is not a file name inside the model folder");
        }
        return readInside(dir, name, root);
    }

    public Path dir() { return dir; }
    /** The real folder every file of this model must resolve inside. */
    public Path root() { return root; }
    /** Where this model's tokenizer files are: its adapter's folder when the adapter ships them. */
    public Path tokenizerDir() { return tokenizerDir; }
    /** The parsed config.json, or null when the folder has none. */
    public ObjectNode config() { return config; }
    public Map<String, Located> tensors() { return tensors; }
    public Located tensor(String name) { return tensors.get(name); }
    public List<TensorFile> files() { return files; }

    /**
     * This model with a LoRA adapter applied: low-rank updates attached to their target tensors,
     * modules_to_save tensors in place of the base's (a resized embedding changes vocab_size), and
     * the adapter's tokenizer when it ships one.
     */
    public ModelFolder withAdapter(LoraAdapter adapter) {
        Map<String, Located> t = new LinkedHashMap<>(tensors);
        ObjectNode cfg = config == null ? null : config.deepCopy();
        for (Map.Entry<String, TensorInfo> e : adapter.replacements().entrySet()) {
            Located base = t.get(e.getKey());
            if (base == null) {
                throw new FormatException(adapter.file().path() + ": tensor '" + e.getValue().name() + "' replaces '" + e.getKey()
                        + "', which the base model " + dir + " does not have");
            }
            t.put(e.getKey(), new Located(adapter.file(), e.getValue(), null));
            long[] ns = e.getValue().shape(), os = base.info().shape();
            if (cfg != null && ns.length == 2 && os.length == 2 && ns[0] != os[0] && cfg.has("vocab_size")
                    && (e.getKey().contains("embed_tokens") || e.getKey().contains("lm_head"))) {
                cfg.put("vocab_size", ns[0]); // the adapter resized the vocabulary
            }
        }
        for (Map.Entry<String, LoraAdapter.Update> e : adapter.updates().entrySet()) {
            Located base = t.get(e.getKey());
            LoraAdapter.Update u = e.getValue();
            if (base == null) {
                throw new FormatException(adapter.file().path() + ": '" + u.a().name() + "' targets '" + e.getKey()
                        + "', which the base model " + dir + " does not have; is this adapter for another model?");
            }
            long[] shape = base.info().shape();
            long rows = u.transposed() ? u.a().shape()[1] : u.b().shape()[0];
            long cols = u.transposed() ? u.b().shape()[0] : u.a().shape()[1];
            if (shape.length != 2 || shape[0] != rows || shape[1] != cols) {
                throw new FormatException(adapter.file().path() + ": '" + u.a().name() + "' and '" + u.b().name() + "' make a ["
                        + rows + ", " + cols + "] update, but '" + e.getKey() + "' is " + base.info().shapeString());
            }
            t.put(e.getKey(), new Located(base.file(), base.info(), new LowRank(adapter.file(), u.a(), u.b(), u.scale(), u.transposed())));
        }
        List<TensorFile> f = new ArrayList<>(files);
        f.add(adapter.file());
        Path tok = adapter.hasTokenizer() ? adapter.dir() : tokenizerDir;
        Path tokRoot = adapter.hasTokenizer() ? adapter.root() : tokenizerRoot;
        return new ModelFolder(dir, root, tok, tokRoot, cfg, Collections.unmodifiableMap(t), Collections.unmodifiableList(f));
    }

    /** Index of a shard file within this model, to order reads by file and offset. */
    public int fileIndex(TensorFile f) {
        return files.indexOf(f);
    }

    @Override
    public void close() {
        files.forEach(TensorFile::close);
    }
}
