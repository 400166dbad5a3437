package org.mergeengine.multi;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.TextNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.config.MergeConfig;
import org.mergeengine.config.ModelRef;

/**
 * A multi-stage file: several merge documents separated by "---". A document may have a {@code name};
 * at most one has none (the final merge). Wherever a later document expects a model reference, an
 * earlier stage's name stands for its output folder, {@code DIR/<name>}. Only model-reference fields
 * are rewritten (models[].model, base_model, slices[].sources[].model, slices[].base_model, the same in each of modules:, the
 * tokenizer's model sources), never other strings.
 */
public final class MultiConfig {
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]*");

    /** One stage: its config (references rewritten), the stages it needs, and where it writes. */
    public record Stage(String name, MergeConfig config, Set<String> dependsOn, Path output, String canonicalYaml) {
        public boolean isFinal() {
            return name == null;
        }

        public String label() {
            return name == null ? "(final)" : name;
        }
    }

    private final List<Stage> stages;

    private MultiConfig(List<Stage> stages) {
        this.stages = stages;
    }

    public List<Stage> stages() {
        return stages;
    }

    public static MultiConfig parse(String text, Path intermediateDir, Path outPath) {
        List<JsonNode> docs = ConfigParser.readDocuments(text);
        Map<String, ObjectNode> named = new LinkedHashMap<>();
        ObjectNode unnamed = null;
        List<String> order = new ArrayList<>();
        for (int i = 0; i < docs.size(); i++) {
            JsonNode d = docs.get(i);
            String where = "document " + (i + 1);
            if (!(d instanceof ObjectNode o)) throw new ConfigException(where, "must be a mapping (a merge config)");
            JsonNode n = o.get("name");
            if (n == null || n.isNull()) {
                if (unnamed != null) throw new ConfigException(where, "more than one merge has no name; only the final merge may be unnamed");
                unnamed = o;
                order.add(null);
                continue;
            }
            String name = n.asText();
            if (!NAME.matcher(name).matches() || name.contains("..")) {
                throw new ConfigException(where + ".name", "'" + name + "' is not a usable stage name (letters, digits, '.', '_', '-')");
            }
            if (named.put(name, o) != null) throw new ConfigException(where + ".name", "duplicate merge name '" + name + "'");
            order.add(name);
        }
        if (unnamed != null && outPath == null) {
            throw new ConfigException("", "the file has an unnamed (final) merge: give --out-path for its output");
        }
        List<Stage> stages = new ArrayList<>();
        for (String name : order) {
            ObjectNode doc = (name == null ? unnamed : named.get(name)).deepCopy();
            Set<String> deps = new LinkedHashSet<>();
            rewrite(doc, named.keySet(), intermediateDir, deps);
            String where = name == null ? "final merge" : "merge '" + name + "'";
            if (name != null && deps.contains(name)) throw new ConfigException(where, "circular dependency: the merge refers to itself");
            String yaml;
            try {
                yaml = YAML.writeValueAsString(doc);
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                throw new IllegalStateException(e);
            }
            MergeConfig cfg;
            try {
                cfg = ConfigParser.fromTree(doc, yaml);
            } catch (ConfigException e) {
                throw new ConfigException(where, e.getMessage());
            }
            stages.add(new Stage(name, cfg, deps, name == null ? outPath : intermediateDir.resolve(name), yaml));
        }
        checkCycles(stages);
        return new MultiConfig(stages);
    }

    static final YAMLMapper YAML = new YAMLMapper();

    /** Rewrites the model-reference fields that name a stage, recording the stages used. */
    private static void rewrite(ObjectNode doc, Set<String> names, Path dir, Set<String> deps) {
        ref(doc, "base_model", names, dir, deps);
        rewriteInputs(doc, names, dir, deps);
        if (doc.get("modules") instanceof ObjectNode modules) {
            for (JsonNode m : modules) if (m instanceof ObjectNode mo) rewriteInputs(mo, names, dir, deps);
        }
        ref(doc, "tokenizer_source", names, dir, deps);
        if (doc.get("tokenizer") instanceof ObjectNode tok) {
            ref(tok, "source", names, dir, deps);
            if (tok.get("tokens") instanceof ObjectNode tokens) {
                for (Iterator<JsonNode> it = tokens.elements(); it.hasNext(); ) {
                    JsonNode t = it.next();
                    if (!(t instanceof ObjectNode to)) continue;
                    ref(to, "source", names, dir, deps);
                    if (to.get("source") instanceof ObjectNode src) ref(src, "model", names, dir, deps);
                }
            }
        }
    }

    /** The models: and slices: of the document, or of one of its modules. */
    private static void rewriteInputs(ObjectNode doc, Set<String> names, Path dir, Set<String> deps) {
        if (doc.get("models") instanceof ArrayNode models) {
            for (JsonNode m : models) {
                if (m instanceof ObjectNode o) ref(o, "model", names, dir, deps);
                else if (m.isTextual()) {
                    // a bare string entry
                    String r = rewritten(m.asText(), names, dir, deps);
                    if (r != null) ((ArrayNode) models).set(indexOf(models, m), TextNode.valueOf(r));
                }
            }
        }
        if (doc.get("slices") instanceof ArrayNode slices) {
            for (JsonNode s : slices) {
                if (!(s instanceof ObjectNode so)) continue;
                ref(so, "base_model", names, dir, deps);
                if (so.get("sources") instanceof ArrayNode src) for (JsonNode in : src) if (in instanceof ObjectNode io) ref(io, "model", names, dir, deps);
            }
        }
    }

    private static int indexOf(ArrayNode a, JsonNode n) {
        for (int i = 0; i < a.size(); i++) if (a.get(i) == n) return i;
        return -1;
    }

    private static void ref(ObjectNode o, String field, Set<String> names, Path dir, Set<String> deps) {
        JsonNode v = o.get(field);
        if (v == null || !v.isTextual()) return;
        String r = rewritten(v.asText(), names, dir, deps);
        if (r != null) o.put(field, r);
    }

    /** The reference with a stage name replaced by the stage's folder (an adapter is kept), or null if it names no stage. */
    private static String rewritten(String text, Set<String> names, Path dir, Set<String> deps) {
        if (text.equals("union") || text.equals("base")) return null;
        ModelRef ref;
        try {
            ref = ModelRef.parse(text, "");
        } catch (ConfigException e) {
            return null;
        }
        String path = ref.path();
        String lora = ref.loraPath();
        boolean changed = false;
        if (names.contains(path)) {
            if (ref.revision() != null) throw new ConfigException("", "'" + text + "': merge '" + path + "' is a local output and has no revisions");
            deps.add(path);
            path = dir.resolve(path).toAbsolutePath().toString();
            changed = true;
        }
        if (lora != null && names.contains(lora)) {
            deps.add(lora);
            lora = dir.resolve(lora).toAbsolutePath().toString();
            changed = true;
        }
        if (!changed) return null;
        return new ModelRef(path, names.contains(ref.path()) ? null : ref.revision(), lora, ref.loraRevision()).toString();
    }

    private static void checkCycles(List<Stage> stages) {
        Map<String, Stage> byName = new LinkedHashMap<>();
        for (Stage s : stages) if (s.name() != null) byName.put(s.name(), s);
        Map<String, Integer> state = new LinkedHashMap<>(); // 1 visiting, 2 done
        for (String n : byName.keySet()) visit(n, byName, state, new ArrayList<>());
    }

    private static void visit(String n, Map<String, Stage> byName, Map<String, Integer> state, List<String> path) {
        Integer st = state.get(n);
        if (st != null && st == 2) return;
        if (st != null && st == 1) {
            List<String> cycle = new ArrayList<>(path.subList(path.indexOf(n), path.size()));
            cycle.add(n);
            throw new ConfigException("", "circular dependency between merges: " + String.join(" -> ", cycle));
        }
        state.put(n, 1);
        path.add(n);
        for (String d : byName.get(n).dependsOn()) visit(d, byName, state, path);
        path.remove(path.size() - 1);
        state.put(n, 2);
    }
}
