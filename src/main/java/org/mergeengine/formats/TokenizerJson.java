package org.mergeengine.formats;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A Hugging Face fast tokenizer (tokenizer.json): its model vocabulary and added tokens, by id.
 * Only what merging vocabularies needs; the rest of the JSON is carried through untouched.
 */
public final class TokenizerJson {
    private final Path file;
    private final ObjectNode json;
    private final Map<String, Integer> ids = new LinkedHashMap<>();
    private final Map<String, ObjectNode> added = new LinkedHashMap<>();

    private TokenizerJson(Path file, ObjectNode json) {
        this.file = file;
        this.json = json;
        JsonNode model = json.path("model");
        JsonNode vocab = model.get("vocab");
        if (vocab != null && vocab.isObject()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = vocab.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                ids.put(e.getKey(), id(file, e.getKey(), e.getValue()));
            }
        } else if (vocab != null && vocab.isArray()) { // Unigram: [[piece, score], ...], id = position
            for (int i = 0; i < vocab.size(); i++) ids.put(vocab.get(i).get(0).asText(), i);
        } else {
            throw new FormatException(file + ": no model.vocab found; only tokenizer.json files with a vocabulary can be merged");
        }
        JsonNode at = json.get("added_tokens");
        if (at != null && at.isArray()) {
            for (JsonNode a : at) {
                if (!a.has("content") || !a.has("id")) throw new FormatException(file + ": added_tokens entries need 'id' and 'content'");
                added.put(a.get("content").asText(), (ObjectNode) a);
                ids.putIfAbsent(a.get("content").asText(), id(file, a.get("content").asText(), a.get("id")));
            }
        }
    }

    /** A token id as written; one past the int range is refused with its own digits, never wrapped around. */
    private static int id(Path file, String token, JsonNode v) {
        if (v.isNumber() && !v.canConvertToInt()) {
            throw new FormatException(file + ": token '" + token + "' has id " + v.asText() + ", which is not a token id");
        }
        return v.asInt();
    }

    /** The tokenizer.json of a model (its adapter's when the adapter ships one), read only if it resolves inside its folder. */
    public static TokenizerJson read(ModelFolder model) {
        Path dir = model.tokenizerDir();
        Path real = model.resolveTokenizerFile("tokenizer.json");
        if (real == null || !Files.isRegularFile(real)) {
            throw new FormatException(dir + ": has no tokenizer.json; merging vocabularies needs each model's fast tokenizer file");
        }
        return new TokenizerJson(dir.resolve("tokenizer.json"), Json.readObject(real));
    }

    public Path file() { return file; }
    /** Every token (vocabulary and added) to its id. */
    public Map<String, Integer> ids() { return ids; }
    /** Added tokens by content, with their settings (special, normalized, ...). */
    public Map<String, ObjectNode> added() { return added; }

    /** Tokens in id order, up to {@code limit} ids (ids at or past the limit are dropped). */
    public List<String> tokensBelow(int limit) {
        String[] byId = new String[limit];
        for (Map.Entry<String, Integer> e : ids.entrySet()) if (e.getValue() >= 0 && e.getValue() < limit) byId[e.getValue()] = e.getKey();
        List<String> out = new ArrayList<>();
        for (String s : byId) if (s != null) out.add(s);
        return out;
    }

    public boolean isAdded(String token) {
        return added.containsKey(token);
    }

    /**
     * A copy without the tokens whose id is {@code limit} or more (and without the BPE merges that
     * name them), plus {@code extra} added tokens appended in order with the next free ids.
     */
    public ObjectNode rewrite(int limit, List<ObjectNode> extra) {
        ObjectNode out = json.deepCopy();
        ObjectNode model = (ObjectNode) out.get("model");
        java.util.Set<String> removed = new java.util.HashSet<>();
        if (model.get("vocab").isObject()) {
            ObjectNode v = (ObjectNode) model.get("vocab");
            for (Iterator<Map.Entry<String, JsonNode>> it = v.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (e.getValue().asInt() >= limit) {
                    removed.add(e.getKey());
                    it.remove();
                }
            }
        } else {
            ArrayNode v = (ArrayNode) model.get("vocab");
            while (v.size() > limit) {
                removed.add(v.get(v.size() - 1).get(0).asText());
                v.remove(v.size() - 1);
            }
        }
        if (!removed.isEmpty() && model.get("merges") instanceof ArrayNode merges) {
            ArrayNode kept = Json.MAPPER.createArrayNode();
            for (JsonNode m : merges) {
                String[] parts = m.isArray() ? new String[] {m.get(0).asText(), m.get(1).asText()} : m.asText().split(" ", 2);
                boolean uses = removed.contains(parts[0]) || (parts.length > 1 && (removed.contains(parts[1]) || removed.contains(parts[0] + parts[1])));
                if (!uses) kept.add(m);
            }
            model.set("merges", kept);
        }
        ArrayNode at = out.has("added_tokens") && out.get("added_tokens").isArray() ? (ArrayNode) out.get("added_tokens") : out.putArray("added_tokens");
        for (int i = at.size() - 1; i >= 0; i--) if (at.get(i).get("id").asInt() >= limit) at.remove(i);
        for (ObjectNode e : extra) at.add(e);
        return out;
    }
}
