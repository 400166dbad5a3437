package org.mergeengine.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.LinkedHashSet;
import java.util.Map;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.MergeConfig;
import org.mergeengine.config.ModelRef;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.TokenizerJson;

/**
 * The output vocabulary of a merge with {@code tokenizer_source} / {@code tokenizer:}, and how each
 * model's vocabulary matrices (embed_tokens, lm_head) are rebuilt for it before the merge method
 * sees them.
 *
 * <p>Vocabulary: {@code base} is the base tokenizer without ids past its model's vocab_size;
 * {@code <model>} is that model's tokenizer as is; {@code union} keeps the base's ids and appends
 * every other token of the models (regular tokens first, in model order, then added tokens; first
 * definition wins); tokens named under {@code tokenizer.tokens} are added last.
 *
 * <p>Rows: a model's own row for every token it has (unless the token is {@code force}d); otherwise
 * the configured source, else the only model that has the token, else the base's row, else the mean
 * of the models that have it, else zeros. Padding rows (pad_to_multiple_of) hold the mean of the
 * real rows.
 */
public final class TokenizerMerge {
    private final MergeConfig.TokenizerSpec spec;
    private final List<String> vocab;
    private final int padded;
    private final ObjectNode tokenizerJson;
    private final ObjectNode tokenizerConfig;
    private final ModelFolder donor;
    private final Map<ModelRef, Map<String, Integer>> modelIds = new HashMap<>();
    private final Map<ModelRef, TokenizerJson> tokenizers = new HashMap<>();
    private final List<String> warnings = new ArrayList<>();

    public TokenizerMerge(MergeConfig.TokenizerSpec spec, Map<ModelRef, ModelFolder> models, ModelRef base, ModelFolder sourceModel) {
        this.spec = spec;
        for (Map.Entry<ModelRef, ModelFolder> e : models.entrySet()) {
            TokenizerJson t = TokenizerJson.read(e.getValue());
            tokenizers.put(e.getKey(), t);
            int limit = vocabSize(e.getValue());
            Map<String, Integer> ids = new HashMap<>();
            for (Map.Entry<String, Integer> id : t.ids().entrySet()) if (id.getValue() < limit) ids.put(id.getKey(), id.getValue());
            modelIds.put(e.getKey(), ids);
        }
        List<ObjectNode> extra = new ArrayList<>();
        Map<String, Integer> out = new LinkedHashMap<>();
        TokenizerJson start;
        int limit;
        if (spec.source().equals("model")) {
            start = TokenizerJson.read(sourceModel);
            limit = Integer.MAX_VALUE;
            donor = sourceModel;
        } else {
            start = tokenizers.get(base);
            limit = vocabSize(models.get(base));
            donor = models.get(base);
        }
        for (String t : start.tokensBelow(limit == Integer.MAX_VALUE ? start.ids().size() + start.added().size() + 1 : limit)) out.put(t, out.size());
        if (out.size() != maxId(start, limit) + 1) {
            throw new ConfigException(spec.yamlPath(), start.file() + ": token ids are not contiguous from 0, so its vocabulary cannot be extended");
        }
        if (spec.source().equals("union")) {
            LinkedHashSet<String> regular = new LinkedHashSet<>();
            Map<String, ObjectNode> added = new LinkedHashMap<>();
            List<ModelRef> order = new ArrayList<>();
            order.add(base);
            for (ModelRef r : models.keySet()) if (!r.equals(base)) order.add(r);
            for (ModelRef r : order) {
                TokenizerJson t = tokenizers.get(r);
                Map<String, Integer> ids = modelIds.get(r);
                List<Map.Entry<String, Integer>> sorted = new ArrayList<>(ids.entrySet());
                sorted.sort(Map.Entry.comparingByValue());
                for (Map.Entry<String, Integer> e : sorted) {
                    if (t.isAdded(e.getKey())) {
                        ObjectNode prev = added.putIfAbsent(e.getKey(), t.added().get(e.getKey()));
                        if (prev != null && !sameSettings(prev, t.added().get(e.getKey()))) {
                            warnings.add("added token " + e.getKey() + " is defined differently by " + r + "; the first definition is kept");
                        }
                    } else {
                        regular.add(e.getKey());
                    }
                }
            }
            for (String t : regular) if (!out.containsKey(t)) extra.add(added(t, out, null));
            for (Map.Entry<String, ObjectNode> e : added.entrySet()) if (!out.containsKey(e.getKey())) extra.add(added(e.getKey(), out, e.getValue()));
        }
        for (String t : spec.tokens().keySet()) if (!out.containsKey(t)) extra.add(added(t, out, null));
        this.vocab = new ArrayList<>(out.keySet());
        int pad = spec.padToMultipleOf() == null ? 1 : spec.padToMultipleOf();
        this.padded = (vocab.size() + pad - 1) / pad * pad;
        this.tokenizerJson = start.rewrite(limit == Integer.MAX_VALUE ? Integer.MAX_VALUE : limit, extra);
        this.tokenizerConfig = tokenizerConfig(donor, limit, extra);
        for (Map.Entry<String, MergeConfig.TokenSpec> e : spec.tokens().entrySet()) {
            MergeConfig.TokenSpec ts = e.getValue();
            if (ts.model() != null && !models.containsKey(ts.model())) {
                throw new ConfigException(ts.yamlPath() + ".source", "model " + ts.model() + " is not one of this merge's models");
            }
        }
    }

    private static int maxId(TokenizerJson t, int limit) {
        int m = -1;
        for (int id : t.ids().values()) if (id < limit) m = Math.max(m, id);
        return m;
    }

    private static boolean sameSettings(ObjectNode a, ObjectNode b) {
        ObjectNode x = a.deepCopy(), y = b.deepCopy();
        x.remove("id");
        y.remove("id");
        return x.equals(y);
    }

    private static ObjectNode added(String token, Map<String, Integer> out, ObjectNode settings) {
        ObjectNode a = Json.MAPPER.createObjectNode();
        a.put("id", out.size());
        a.put("content", token);
        a.put("single_word", settings != null && settings.path("single_word").asBoolean());
        a.put("lstrip", settings != null && settings.path("lstrip").asBoolean());
        a.put("rstrip", settings != null && settings.path("rstrip").asBoolean());
        a.put("normalized", settings == null || settings.path("normalized").asBoolean());
        a.put("special", settings != null && settings.path("special").asBoolean());
        out.put(token, out.size());
        return a;
    }

    private static ObjectNode tokenizerConfig(ModelFolder donor, int limit, List<ObjectNode> extra) {
        java.nio.file.Path f = donor.resolveTokenizerFile("tokenizer_config.json");
        if (f == null || !Files.isRegularFile(f)) return null;
        ObjectNode c = Json.readObject(f);
        JsonNode dec = c.get("added_tokens_decoder");
        if (dec instanceof ObjectNode d) {
            for (Iterator<String> it = d.fieldNames(); it.hasNext(); ) {
                String id = it.next();
                try {
                    if (Integer.parseInt(id) >= limit) it.remove();
                } catch (NumberFormatException ignored) {
                    // not an id: leave it
                }
            }
            for (ObjectNode a : extra) {
                ObjectNode e = a.deepCopy();
                e.remove("id");
                d.set(Integer.toString(a.get("id").asInt()), e);
            }
        }
        return c;
    }

    /** The vocabulary size of a model: config.json's vocab_size, else its embedding's rows. */
    static int vocabSize(ModelFolder m) {
        if (m.config() != null && m.config().path("vocab_size").isIntegralNumber() && m.config().get("vocab_size").canConvertToInt()) return m.config().get("vocab_size").asInt();
        for (Map.Entry<String, ModelFolder.Located> e : m.tensors().entrySet()) {
            if (ModelLayout.isInputEmbedding(e.getKey()) && ModelLayout.isVocabularyName(e.getKey()) && e.getValue().info().rank() == 2) {
                return (int) e.getValue().info().shape()[0];
            }
        }
        return Integer.MAX_VALUE;
    }

    public int size() { return vocab.size(); }
    /** Rows of the output vocabulary matrices (the size rounded up to pad_to_multiple_of). */
    public int paddedSize() { return padded; }
    public ObjectNode tokenizerJson() { return tokenizerJson; }
    public ObjectNode tokenizerConfig() { return tokenizerConfig; }
    public ModelFolder donor() { return donor; }
    public List<String> warnings() { return warnings; }

    /**
     * Model {@code k}'s matrix rebuilt for the output vocabulary. {@code models}/{@code located} are
     * the inputs of one vocabulary tensor (the base among them at {@code baseIdx}, or -1).
     */
    public PermutedRows rows(int k, List<ModelRef> models, List<ModelFolder.Located> located, int baseIdx, String tensor) {
        long cols = located.get(k).info().shape()[1];
        int v = vocab.size();
        int[][] src = new int[padded][], ids = new int[padded][];
        int zeros = 0;
        for (int i = 0; i < v; i++) {
            String t = vocab.get(i);
            MergeConfig.TokenSpec ts = spec.tokens().get(t);
            Integer own = id(models.get(k), t, located.get(k));
            if (own != null && (ts == null || !ts.force())) {
                src[i] = new int[] {k};
                ids[i] = new int[] {own};
                continue;
            }
            if (ts != null) {
                configured(ts, t, models, located, tensor, src, ids, i);
                continue;
            }
            List<Integer> holders = new ArrayList<>();
            List<Integer> holderIds = new ArrayList<>();
            for (int m = 0; m < models.size(); m++) {
                Integer id = id(models.get(m), t, located.get(m));
                if (id != null) {
                    holders.add(m);
                    holderIds.add(id);
                }
            }
            if (holders.size() > 1 && baseIdx >= 0 && holders.contains(baseIdx)) {
                int at = holders.indexOf(baseIdx);
                holders = List.of(baseIdx);
                holderIds = List.of(holderIds.get(at));
            }
            if (holders.isEmpty()) zeros++;
            src[i] = holders.stream().mapToInt(Integer::intValue).toArray();
            ids[i] = holderIds.stream().mapToInt(Integer::intValue).toArray();
        }
        if (zeros > 0 && k == 0) warnings.add(tensor + ": " + zeros + " token(s) found in no model get zero rows");
        for (int i = v; i < padded; i++) {
            src[i] = new int[0];
            ids[i] = new int[0];
        }
        return new PermutedRows(padded, cols, List.copyOf(located), src, ids, v);
    }

    private void configured(MergeConfig.TokenSpec ts, String token, List<ModelRef> models, List<ModelFolder.Located> located, String tensor,
                            int[][] src, int[][] ids, int i) {
        if (ts.kind().equals("zero")) {
            src[i] = new int[0];
            ids[i] = new int[0];
            return;
        }
        int m = models.indexOf(ts.model());
        if (m < 0) throw new ConfigException(ts.yamlPath() + ".source", "model " + ts.model() + " has no " + tensor + " among this tensor's inputs");
        Integer id;
        if (ts.kind().equals("model")) {
            id = id(ts.model(), token, located.get(m));
            if (id == null) throw new ConfigException(ts.yamlPath() + ".source", "model " + ts.model() + " has no token '" + token + "'");
        } else if (ts.tokenId() != null) {
            id = ts.tokenId();
            if (id < 0 || id >= located.get(m).info().shape()[0]) {
                throw new ConfigException(ts.yamlPath() + ".source.token_id", id + " is outside " + ts.model() + "'s " + tensor + " rows");
            }
        } else {
            id = tokenizers.get(ts.model()).ids().get(ts.token());
            if (id == null) throw new ConfigException(ts.yamlPath() + ".source.token", "model " + ts.model() + " has no token '" + ts.token() + "'");
        }
        src[i] = new int[] {m};
        ids[i] = new int[] {id};
    }

    private Integer id(ModelRef m, String token, ModelFolder.Located l) {
        Integer id = modelIds.get(m).get(token);
        return id != null && id < l.info().shape()[0] ? id : null;
    }
}
