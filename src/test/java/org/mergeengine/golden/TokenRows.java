package org.mergeengine.golden;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import org.mergeengine.formats.Json;

/** Puts vocabulary rows of an output into the expected tokenizer's id order (added-token ids are free). */
final class TokenRows {
    private TokenRows() {}

    static Map<Integer, String> idToToken(Path modelDir) {
        JsonNode tok = Json.read(modelDir.resolve("tokenizer.json"));
        Map<Integer, String> m = new HashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = tok.get("model").get("vocab").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            m.put(e.getValue().asInt(), e.getKey());
        }
        for (JsonNode a : tok.get("added_tokens")) m.put(a.get("id").asInt(), a.get("content").asText());
        return m;
    }

    static float[] reorder(Path expectedDir, Path gotDir, float[] got, int cols) {
        Map<Integer, String> exp = idToToken(expectedDir), out = idToToken(gotDir);
        Map<String, Integer> outIds = new HashMap<>();
        out.forEach((id, t) -> outIds.put(t, id));
        int rows = got.length / cols;
        float[] r = new float[got.length];
        for (int id = 0; id < rows; id++) {
            String t = exp.get(id);
            Integer src = t == null ? null : outIds.get(t);
            if (src == null || src >= rows) throw new AssertionError("token " + t + " (expected id " + id + ") missing from the output tokenizer");
            System.arraycopy(got, src * cols, r, id * cols, cols);
        }
        return r;
    }
}
