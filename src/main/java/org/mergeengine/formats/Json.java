package org.mergeengine.formats;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.BooleanNode;
import com.fasterxml.jackson.databind.node.DecimalNode;
import com.fasterxml.jackson.databind.node.DoubleNode;
import com.fasterxml.jackson.databind.node.NullNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.TextNode;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.Map;

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

    /**
     * A config file read so that it can be written back exactly: every non-integral number keeps
     * the text it was written with ({@code 1e-05}, {@code 10000.0}), since typed configs tell
     * {@code 1.0} from {@code 1}.
     */
    public static ObjectNode readExactObject(Path file) {
        try (JsonParser p = MAPPER.createParser(Files.readAllBytes(file))) {
            p.nextToken();
            JsonNode n = exact(p);
            if (p.nextToken() != null) throw new FormatException(file + ": not valid JSON (text after the top-level value)");
            if (!(n instanceof ObjectNode o)) throw new FormatException(file + ": expected a JSON object at the top level");
            return o;
        } catch (IOException e) {
            throw new FormatException(file + ": not valid JSON (" + firstLine(e.getMessage()) + ")");
        }
    }

    private static JsonNode exact(JsonParser p) throws IOException {
        JsonToken t = p.currentToken();
        if (t == null) throw new IOException("unexpected end of input");
        switch (t) {
            case START_OBJECT: {
                ObjectNode o = MAPPER.createObjectNode();
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String k = p.currentName();
                    p.nextToken();
                    o.set(k, exact(p));
                }
                return o;
            }
            case START_ARRAY: {
                ArrayNode a = MAPPER.createArrayNode();
                while (p.nextToken() != JsonToken.END_ARRAY) a.add(exact(p));
                return a;
            }
            case VALUE_STRING:
                return TextNode.valueOf(p.getText());
            case VALUE_NUMBER_INT:
                return MAPPER.getNodeFactory().numberNode(p.getBigIntegerValue());
            case VALUE_NUMBER_FLOAT:
                if (p.isNaN()) return DoubleNode.valueOf(p.getDoubleValue());
                return new ExactNumber(p.getText(), p.getDecimalValue());
            case VALUE_TRUE:
                return BooleanNode.TRUE;
            case VALUE_FALSE:
                return BooleanNode.FALSE;
            case VALUE_NULL:
                return NullNode.instance;
            default:
                throw new IOException("unexpected " + t);
        }
    }

    /** A number that keeps the text it was read with, for {@link #toPythonText}. */
    public static final class ExactNumber extends DecimalNode {
        private final String text;

        ExactNumber(String text, BigDecimal value) {
            super(value);
            this.text = text;
        }

        public String text() {
            return text;
        }
    }

    /**
     * The text Python's {@code json.dumps(obj, indent=2)} gives (as transformers writes
     * config.json): two-space indent, {@code ": "} and {@code ","} separators, one array item a
     * line, {@code []} and {@code {}} when empty, non-ASCII as backslash-u escapes, floats as
     * Python's repr unless their text was kept.
     */
    public static String toPythonText(JsonNode node) {
        StringBuilder sb = new StringBuilder();
        python(sb, node, 0);
        return sb.toString();
    }

    private static void python(StringBuilder sb, JsonNode n, int depth) {
        if (n.isObject() || n.isArray()) {
            if (n.isEmpty()) {
                sb.append(n.isObject() ? "{}" : "[]");
                return;
            }
            sb.append(n.isObject() ? '{' : '[');
            boolean first = true;
            for (Iterator<Map.Entry<String, JsonNode>> it = n.isObject() ? n.fields() : null; it != null && it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                sb.append(first ? "\n" : ",\n").append("  ".repeat(depth + 1));
                pythonString(sb, e.getKey());
                sb.append(": ");
                python(sb, e.getValue(), depth + 1);
                first = false;
            }
            if (n.isArray()) {
                for (JsonNode e : n) {
                    sb.append(first ? "\n" : ",\n").append("  ".repeat(depth + 1));
                    python(sb, e, depth + 1);
                    first = false;
                }
            }
            sb.append('\n').append("  ".repeat(depth)).append(n.isObject() ? '}' : ']');
        } else if (n instanceof ExactNumber x) {
            sb.append(x.text());
        } else if (n.isIntegralNumber()) {
            sb.append(n.bigIntegerValue());
        } else if (n.isNumber()) {
            sb.append(pythonFloat(n.doubleValue()));
        } else if (n.isTextual()) {
            pythonString(sb, n.textValue());
        } else if (n.isBoolean()) {
            sb.append(n.booleanValue() ? "true" : "false");
        } else {
            sb.append("null");
        }
    }

    private static void pythonString(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20 || c > 0x7e) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        sb.append('"');
    }

    /** Python's repr of a float: shortest digits, positional from 1e-4 up to 1e16, else d.ddde±XX. */
    static String pythonFloat(double d) {
        if (Double.isNaN(d)) return "NaN";
        if (Double.isInfinite(d)) return d > 0 ? "Infinity" : "-Infinity";
        if (d == 0) return (1 / d < 0) ? "-0.0" : "0.0";
        BigDecimal b = new BigDecimal(Double.toString(d)).stripTrailingZeros();
        int exp = b.precision() - b.scale() - 1;
        if (exp >= -4 && exp < 16) {
            String plain = b.toPlainString();
            return plain.contains(".") ? plain : plain + ".0";
        }
        String digits = b.unscaledValue().abs().toString();
        StringBuilder sb = new StringBuilder(b.signum() < 0 ? "-" : "").append(digits.charAt(0));
        if (digits.length() > 1) sb.append('.').append(digits, 1, digits.length());
        sb.append('e').append(exp < 0 ? '-' : '+');
        int a = Math.abs(exp);
        if (a < 10) sb.append('0');
        return sb.append(a).toString();
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
