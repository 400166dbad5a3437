package org.mergeengine.config;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.ObjectCodec;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.io.IOContext;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactoryBuilder;
import com.fasterxml.jackson.dataformat.yaml.YAMLParser;
import java.io.IOException;
import java.io.Reader;
import java.io.StringReader;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.events.AliasEvent;
import org.yaml.snakeyaml.events.NodeEvent;

/**
 * Reads the YAML documents of a config into trees, as PyYAML's safe_load (what mergekit uses) would:
 * aliases ({@code base_model: *b}) stand for their anchor's value, and {@code <<: *defaults} merges
 * a mapping's keys. Hostile files are refused up front instead of exhausting time or memory: a
 * size limit, a line-length limit (the YAML scanner's work on one line grows with the square of
 * its length) and a limit on the nodes aliases may add (alias bombs).
 */
final class YamlDocuments {
    /** Configs are a few kilobytes; anything past this is not a merge config. */
    static final int MAX_CHARS = 16 << 20;
    /** Longer than any chat template written on one line. */
    static final int MAX_LINE = 64 << 10;
    /** Nodes that aliases may add to a file's documents, all together. */
    static final int MAX_ALIAS_NODES = 100_000;
    static final int MAX_DEPTH = 500;

    private static final YAMLFactory FACTORY = new AnchorFactory(YAMLFactory.builder()
            .loaderOptions(loaderOptions()).enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION));

    private static LoaderOptions loaderOptions() {
        LoaderOptions lo = new LoaderOptions();
        lo.setCodePointLimit(MAX_CHARS + 1); // the size check below speaks first, with a clearer message
        return lo;
    }

    /**
     * Jackson's YAML parser tells the anchor of a mapping or a list, but not of a scalar that is a
     * mapping's value ({@code model: &b org/base}); the event it last read always carries it.
     */
    private static final class AnchorParser extends YAMLParser {
        AnchorParser(IOContext ctxt, int features, int yamlFeatures, LoaderOptions lo, ObjectCodec codec, Reader r) {
            super(ctxt, features, yamlFeatures, lo, codec, r);
        }

        String anchor() {
            return _lastEvent instanceof NodeEvent e && !(_lastEvent instanceof AliasEvent) ? e.getAnchor() : null;
        }
    }

    private static final class AnchorFactory extends YAMLFactory {
        private static final long serialVersionUID = 1L;

        AnchorFactory(YAMLFactoryBuilder b) {
            super(b);
        }

        @Override
        protected YAMLParser _createParser(Reader r, IOContext ctxt) {
            return new AnchorParser(ctxt, _parserFeatures, _yamlParserFeatures, _loaderOptions, _objectCodec, r);
        }
    }

    private final Map<String, JsonNode> anchors = new HashMap<>();
    private int aliasNodes;

    private YamlDocuments() {}

    /** Every non-empty document of {@code text}; a {@link ConfigException} saying what is wrong otherwise. */
    static List<JsonNode> read(String text) {
        checkShape(text);
        List<JsonNode> docs = new ArrayList<>();
        YamlDocuments reader = new YamlDocuments();
        try (AnchorParser p = (AnchorParser) FACTORY.createParser(new StringReader(text))) {
            JsonToken t;
            while ((t = p.nextToken()) != null) {
                reader.anchors.clear(); // anchors belong to their document
                JsonNode n = reader.value(p, t, 0);
                if (n != null && !n.isNull() && !n.isMissingNode()) docs.add(n);
            }
        } catch (ConfigException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            String msg = e instanceof JsonProcessingException jp ? jp.getOriginalMessage() : e.getMessage();
            String where = "";
            if (e instanceof JsonProcessingException jp && jp.getLocation() != null) {
                where = " at line " + jp.getLocation().getLineNr() + ", column " + jp.getLocation().getColumnNr();
            }
            throw new ConfigException(null, "not valid YAML" + where + ": " + firstLine(msg));
        }
        return docs;
    }

    /** Size and line length, checked in one pass before the YAML scanner sees the text. */
    static void checkShape(String text) {
        if (text.length() > MAX_CHARS) {
            throw new ConfigException(null, "the config is " + text.length() + " characters long; configs over " + (MAX_CHARS >> 20)
                    + " MiB are refused (a merge config is a few kilobytes)");
        }
        int line = 1, start = 0;
        for (int i = 0, n = text.length(); i <= n; i++) {
            if (i == n || text.charAt(i) == '\n') {
                if (i - start > MAX_LINE) {
                    throw new ConfigException(null, "line " + line + " is " + (i - start) + " characters long; lines over " + (MAX_LINE >> 10)
                            + " KiB are refused (write a long value as a block scalar over several lines)");
                }
                line++;
                start = i + 1;
            }
        }
    }

    private JsonNode value(AnchorParser p, JsonToken t, int depth) throws IOException {
        if (depth > MAX_DEPTH) throw error(p, "nested more than " + MAX_DEPTH + " levels deep");
        if (p.isCurrentAlias()) return alias(p, p.getText());
        String anchor = p.anchor();
        JsonNodeFactory f = JsonNodeFactory.instance;
        JsonNode n = switch (t) {
            case START_OBJECT -> mapping(p, depth);
            case START_ARRAY -> {
                ArrayNode a = f.arrayNode();
                JsonToken e;
                while ((e = p.nextToken()) != JsonToken.END_ARRAY) a.add(value(p, e, depth + 1));
                yield a;
            }
            case VALUE_STRING -> f.textNode(p.getText());
            case VALUE_NUMBER_INT -> switch (p.getNumberType()) {
                case INT -> f.numberNode(p.getIntValue());
                case LONG -> f.numberNode(p.getLongValue());
                default -> f.numberNode(p.getBigIntegerValue());
            };
            case VALUE_NUMBER_FLOAT -> f.numberNode(p.getDoubleValue());
            case VALUE_TRUE -> f.booleanNode(true);
            case VALUE_FALSE -> f.booleanNode(false);
            case VALUE_NULL -> f.nullNode();
            case VALUE_EMBEDDED_OBJECT -> p.getEmbeddedObject() instanceof byte[] b ? f.binaryNode(b) : f.pojoNode(p.getEmbeddedObject());
            default -> throw error(p, "unexpected " + t);
        };
        if (anchor != null) anchors.put(anchor, n);
        return n;
    }

    /** A mapping, with PyYAML's merge key: the merged mappings' keys come first, the mapping's own keys win. */
    private ObjectNode mapping(AnchorParser p, int depth) throws IOException {
        ObjectNode own = JsonNodeFactory.instance.objectNode();
        List<ObjectNode> merged = new ArrayList<>();
        JsonToken e;
        while ((e = p.nextToken()) != JsonToken.END_OBJECT) {
            String key = p.currentName();
            JsonNode v = value(p, p.nextToken(), depth + 1);
            if (!key.equals("<<")) {
                own.set(key, v);
            } else if (v instanceof ObjectNode o) {
                merged.add(o);
            } else if (v.isArray()) {
                for (JsonNode m : v) {
                    if (!(m instanceof ObjectNode o)) throw error(p, "'<<' merges mappings, and this list holds a " + m.getNodeType().name().toLowerCase());
                    merged.add(o);
                }
            } else {
                throw error(p, "'<<' merges a mapping or a list of mappings, found a " + v.getNodeType().name().toLowerCase());
            }
        }
        if (merged.isEmpty()) return own;
        ObjectNode out = JsonNodeFactory.instance.objectNode();
        for (int i = merged.size() - 1; i >= 0; i--) { // the first merged mapping wins over later ones
            for (Iterator<Map.Entry<String, JsonNode>> it = merged.get(i).fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> m = it.next();
                out.set(m.getKey(), m.getValue());
            }
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = own.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> m = it.next();
            out.set(m.getKey(), m.getValue());
        }
        return out;
    }

    /** A copy of the anchored value, so that every use is its own tree; what copies add is counted and capped. */
    private JsonNode alias(YAMLParser p, String name) throws IOException {
        JsonNode target = anchors.get(name);
        if (target == null) throw error(p, "alias *" + name + " names no anchor &" + name + " defined before it in this document");
        aliasNodes += size(target, MAX_ALIAS_NODES - aliasNodes + 1);
        if (aliasNodes > MAX_ALIAS_NODES) {
            throw error(p, "aliases expand to more than " + MAX_ALIAS_NODES + " nodes (an alias bomb?); write the values out instead");
        }
        return target.deepCopy();
    }

    /** Nodes in {@code n}, counting no further than {@code limit}. */
    private static int size(JsonNode n, int limit) {
        int count = 1;
        for (JsonNode c : n) {
            if (count >= limit) break;
            count += size(c, limit - count);
        }
        return count;
    }

    private static ConfigException error(JsonParser p, String what) {
        JsonLocation l = p.currentTokenLocation();
        return new ConfigException(null, "YAML at line " + l.getLineNr() + ", column " + l.getColumnNr() + ": " + what);
    }

    static String firstLine(String s) {
        if (s == null) return "";
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }
}
