package org.mergeengine.formats;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Shared JSON reading and writing (2-space indented, key order kept, as the HF tools write). */
public final class Json {
    public static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .enable(SerializationFeature.INDENT_OUTPUT)
            .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
            .build();

    private Json() {}

    public static JsonNode read(Path file) {
        try {
            return MAPPER.readTree(Files.readAllBytes(file));
        } catch (IOException e) {
            throw new FormatException(file + ": not valid JSON (" + firstLine(e.getMessage()) + ")");
        }
    }

    public static ObjectNode readObject(Path file) {
        JsonNode n = read(file);
        if (!(n instanceof ObjectNode o)) throw new FormatException(file + ": expected a JSON object at the top level");
        return o;
    }

    public static void write(Path file, JsonNode node) throws IOException {
        Files.writeString(file, toString(node) + "\n", StandardCharsets.UTF_8);
    }

    public static String toString(JsonNode node) {
        try {
            return MAPPER.writer(new HfPrettyPrinter()).writeValueAsString(node);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    public static String firstLine(String s) {
        if (s == null) return "";
        int i = s.indexOf('\n');
        return i < 0 ? s : s.substring(0, i);
    }

    /** Python's json.dumps(indent=2) style: "key": value, arrays one item a line. */
    static final class HfPrettyPrinter extends com.fasterxml.jackson.core.util.DefaultPrettyPrinter {
        HfPrettyPrinter() {
            _objectFieldValueSeparatorWithSpaces = ": ";
            indentArraysWith(com.fasterxml.jackson.core.util.DefaultIndenter.SYSTEM_LINEFEED_INSTANCE);
            indentObjectsWith(new com.fasterxml.jackson.core.util.DefaultIndenter("  ", "\n"));
        }

        @Override
        public HfPrettyPrinter createInstance() {
            return new HfPrettyPrinter();
        }

        @Override
        public void writeObjectFieldValueSeparator(com.fasterxml.jackson.core.JsonGenerator g) throws IOException {
            g.writeRaw(": ");
        }
    }

    static JsonParser parser(byte[] bytes) throws IOException {
        return MAPPER.createParser(bytes);
    }
}
