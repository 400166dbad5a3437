package org.mergeengine.fuzz;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.formats.FormatException;
import org.mergeengine.formats.RestrictedUnpickler;
import org.mergeengine.formats.TorchBinFile;

/**
 * Properties of the readers of hostile input that does not look like safetensors: torch.save
 * pickles built from the opcodes a state dict uses (and some it must refuse), ZIP tails with
 * arbitrary ZIP64 records, and YAML built from anchors, aliases, merge keys and nesting. Every case
 * ends in a result or the reader's own error naming the input; never an unchecked exception, a
 * stack overflow or an allocation the input dictates. Pickle errors must come from an explicit
 * check, not from the reader's last-resort guard.
 */
class PickleAndYamlPropertiesTest {
    static Path dir;

    @BeforeContainer
    static void make() throws Exception {
        dir = Files.createTempDirectory("pickle-yaml-props");
    }

    @AfterContainer
    static void clean() {
        org.mergeengine.engine.OutputFolder.deleteTree(dir);
    }

    static byte[] le(int n, long v) {
        ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v);
        return java.util.Arrays.copyOf(b.array(), n);
    }

    static byte[] cat(int op, byte[]... parts) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        o.write(op);
        for (byte[] p : parts) o.writeBytes(p);
        return o.toByteArray();
    }

    /** One opcode with arguments, valid or not: lengths and memo keys range over small, huge and negative values. */
    @Provide
    Arbitrary<byte[]> opcode() {
        Arbitrary<Long> anyLen = Arbitraries.oneOf(Arbitraries.longs().between(0, 12), Arbitraries.of(0x7ffffff0L, 0xffffffffL, 0x80000000L, -1L));
        Arbitrary<Integer> key = Arbitraries.integers().between(0, 4);
        return Arbitraries.oneOf(
                Arbitraries.of((int) '(', (int) ')', (int) ']', (int) '}', (int) 'N', (int) 'a', (int) 'e', (int) 's', (int) 'u', (int) 't',
                                0x85, 0x86, 0x87, 0x94, 0x88, 0x89, (int) 'Q', (int) 'R', 0x81, (int) 'b', (int) '.')
                        .map(c -> new byte[] {(byte) (int) c}),
                key.map(k -> new byte[] {'q', (byte) (int) k}),
                key.map(k -> new byte[] {'h', (byte) (int) k}),
                key.map(k -> cat('r', le(4, k))),
                key.map(k -> cat('j', le(4, k))),
                Arbitraries.integers().between(0, 255).map(v -> new byte[] {'K', (byte) (int) v}),
                Arbitraries.integers().map(v -> cat('J', le(4, v))),
                Combinators.combine(Arbitraries.integers().between(0, 12), Arbitraries.integers().between(0, 12))
                        .as((n, have) -> cat(0x8a, new byte[] {(byte) (int) n}, new byte[Math.min(n, have)])),
                Combinators.combine(anyLen, Arbitraries.strings().ofMaxLength(6)).as((n, s) -> cat('X', le(4, n), s.getBytes(StandardCharsets.UTF_8))),
                Arbitraries.strings().alpha().ofMaxLength(8).map(s -> cat(0x8c, new byte[] {(byte) s.length()}, s.getBytes(StandardCharsets.US_ASCII))),
                Arbitraries.of("collections\nOrderedDict\n", "torch._utils\n_rebuild_tensor_v2\n", "torch\nFloatStorage\n", "os\nsystem\n", "torch\n")
                        .map(g -> cat('c', g.getBytes(StandardCharsets.US_ASCII))),
                Arbitraries.of(0x80, 0x95, (int) 'G').map(op -> cat(op, new byte[op == 0x80 ? 1 : 8])),
                Arbitraries.integers().between(0, 255).map(v -> new byte[] {(byte) (int) v}));
    }

    @Property(tries = 1500, seed = "20261203")
    void anyOpcodeSequenceEndsInAStateDictOrACheckedError(@ForAll("opcodeLists") List<byte[]> ops, @ForAll boolean stop) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        o.write(0x80);
        o.write(2);
        for (byte[] op : ops) o.writeBytes(op);
        if (stop) o.write('.');
        Path where = dir.resolve("case.bin");
        try {
            RestrictedUnpickler.stateDict(o.toByteArray(), where);
        } catch (FormatException e) {
            assertTrue(e.getMessage().contains(where.toString()), e.getMessage());
            assertFalse(e.getMessage().contains("damaged pickle ("), "an unchecked path reached the last guard: " + e.getMessage());
        }
    }

    @Provide
    Arbitrary<List<byte[]>> opcodeLists() {
        return opcode().list().ofMaxSize(40);
    }

    @Property(tries = 300, seed = "20261203")
    void selfReferenceAndMemoFloodsAreRefused(@ForAll @IntRange(min = 1, max = 40) int depth, @ForAll @IntRange(min = 0, max = 3) int kind) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        o.writeBytes(new byte[] {(byte) 0x80, 2, '}'});
        switch (kind) {
            case 0 -> { // a list that holds itself, nested in tuples, as a key
                o.writeBytes(new byte[] {']', 'q', 0, 'h', 0, 'a'});
                for (int i = 0; i < depth; i++) o.write(0x85);
            }
            case 1 -> { for (int i = 0; i < depth * 10; i++) o.write(0x85); } // the dict itself in tuples, then nothing to set it in
            case 2 -> { o.write('N'); for (int i = 0; i < depth * 3; i++) o.write(0x85); }
            default -> { o.write('N'); for (int i = 0; i < depth * 40_000; i++) o.write(0x94); }
        }
        o.writeBytes(new byte[] {'N', 's', '.'});
        Path where = dir.resolve("crafted.bin");
        try {
            RestrictedUnpickler.stateDict(o.toByteArray(), where);
        } catch (FormatException e) {
            assertTrue(e.getMessage().contains(where.toString()), e.getMessage());
            assertFalse(e.getMessage().contains("damaged pickle ("), e.getMessage());
        }
    }

    @Property(tries = 500, seed = "20261203")
    void anyZip64TailIsCheckedBeforeItIsFollowed(@ForAll long locatorOffset, @ForAll long cdOffset, @ForAll long cdSize, @ForAll long count,
                                                @ForAll @IntRange(min = 0, max = 64) int padding) throws Exception {
        ByteBuffer b = ByteBuffer.allocate(padding + 56 + 20 + 22).order(ByteOrder.LITTLE_ENDIAN);
        b.position(padding);
        b.putInt(0x06064b50).putLong(44).putShort((short) 45).putShort((short) 45).putInt(0).putInt(0).putLong(count).putLong(count).putLong(cdSize).putLong(cdOffset);
        b.putInt(0x07064b50).putInt(0).putLong(locatorOffset).putInt(1);
        b.putInt(0x06054b50).putShort((short) 0).putShort((short) 0).putShort((short) -1).putShort((short) -1).putInt(-1).putInt(-1).putShort((short) 0);
        Path f = dir.resolve("zip64.bin");
        Files.write(f, b.array());
        try {
            TorchBinFile.open(f).close();
        } catch (FormatException e) {
            assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
            assertFalse(e.getMessage().contains("damaged checkpoint ("), "an unchecked offset reached the last guard: " + e.getMessage());
        }
    }

    /** YAML from fragments that exercise anchors, aliases, merge keys, flow and block nesting, and odd scalars. */
    @Provide
    Arbitrary<String> yaml() {
        Arbitrary<String> name = Arbitraries.of("a", "b", "c");
        Arbitrary<String> scalar = Arbitraries.of("1", "-2", "0.5", "2147483653", "1e400", ".nan", "~", "yes", "'q'", "\"x\"", "org/model", "!!binary aGk=");
        Arbitrary<String> value = Arbitraries.oneOf(
                scalar,
                Combinators.combine(name, scalar).as((n, s) -> "&" + n + " " + s),
                name.map(n -> "*" + n),
                Combinators.combine(name, scalar, scalar).as((n, s, t) -> "&" + n + " {k: " + s + ", l: " + t + "}"),
                Combinators.combine(name, scalar).as((n, s) -> "&" + n + " [" + s + ", " + s + "]"),
                Combinators.combine(name, scalar).as((n, s) -> "{<<: *" + n + ", k: " + s + "}"),
                name.map(n -> "[*" + n + ", *" + n + ", *" + n + "]"),
                Arbitraries.integers().between(1, 600).map(d -> "[".repeat(d) + "]".repeat(d)));
        Arbitrary<String> line = Combinators.combine(Arbitraries.of("merge_method", "models", "base_model", "x", "y", "<<", "parameters"), value)
                .as((k, v) -> k + ": " + v);
        return line.list().ofMinSize(1).ofMaxSize(8).map(ls -> String.join("\n", ls) + "\n");
    }

    @Property(tries = 1000, seed = "20261203")
    void anyYamlEndsInATreeOrAConfigError(@ForAll("yaml") String text) {
        try {
            List<JsonNode> docs = ConfigParser.readDocuments(text);
            assertFalse(docs.isEmpty());
            try {
                ConfigParser.fromTree(docs.get(0), text);
            } catch (ConfigException expected) {
                // the schema's own error
            }
        } catch (ConfigException e) {
            assertFalse(e.getMessage().isBlank());
        }
    }

    @Property(tries = 200, seed = "20261203")
    void aliasBombsAreRefusedExactlyWhenTheyExpandPastTheCap(@ForAll @IntRange(min = 1, max = 12) int width, @ForAll @IntRange(min = 1, max = 9) int levels) {
        StringBuilder sb = new StringBuilder("x0: &x0 [");
        for (int k = 0; k < width; k++) sb.append(k == 0 ? "" : ", ").append("lol");
        sb.append("]\n");
        long size = 1 + width, added = 0; // nodes in x(i-1); nodes the aliases add
        for (int i = 1; i <= levels; i++) {
            sb.append("x").append(i).append(": &x").append(i).append(" [");
            for (int k = 0; k < width; k++) sb.append(k == 0 ? "" : ", ").append("*x").append(i - 1);
            sb.append("]\n");
            added += width * size;
            size = 1 + width * size;
            if (added > 1_000_000_000L) break;
        }
        long cap = 100_000; // the reader's limit on nodes added by aliases
        try {
            ConfigParser.readDocuments(sb.toString());
            assertTrue(added <= cap, "accepted " + added + " alias nodes");
        } catch (ConfigException e) {
            assertTrue(added > cap && e.getMessage().contains("aliases expand to more than " + cap), added + ": " + e.getMessage());
        }
    }
}
