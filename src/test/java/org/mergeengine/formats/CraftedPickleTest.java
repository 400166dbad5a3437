package org.mergeengine.formats;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;

/** Hostile .bin checkpoints: each ends in the engine's error naming the file, never a crash of the reader. */
class CraftedPickleTest {
    @TempDir
    Path dir;

    static byte[] selfReferentialListAsKey() {
        // {} ; [] memo[0] ; push memo[0] ; APPEND (the list now holds itself) ; None ; SETITEM {list: None}
        return new TorchSave.Pickle().op(0x80).op(2).op('}').op(']').op('q').op(0).op('h').op(0).op('a').op('N').op('s').op('.').o.toByteArray();
    }

    static byte[] memoBomb(int n) {
        ByteArrayOutputStream o = new ByteArrayOutputStream(n + 8);
        o.write(0x80);
        o.write(2);
        o.write(']');
        for (int i = 0; i < n; i++) o.write(0x94);
        o.write('.');
        return o.toByteArray();
    }

    static byte[] textLengthOverflow() {
        TorchSave.Pickle p = new TorchSave.Pickle().op(0x80).op(2).op('X');
        p.o.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0x7ffffffa).array()); // with the position (7) this passes Integer.MAX_VALUE
        return p.op('a').op('b').o.toByteArray();
    }

    static byte[] long1PastTheEnd() {
        return new TorchSave.Pickle().op(0x80).op(2).op(0x8a).op(8).op(1).o.toByteArray();
    }

    static byte[] negativeZip64Locator() {
        ByteBuffer b = ByteBuffer.allocate(42).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(0x07064b50).putInt(0).putLong(-4096).putInt(1); // ZIP64 locator: the EOCD64 at a negative offset
        b.putInt(0x06054b50).putShort((short) 0).putShort((short) 0).putShort((short) -1).putShort((short) -1).putInt(-1).putInt(-1).putShort((short) 0);
        return b.array();
    }

    private Path archive(String name, byte[] pickle) throws Exception {
        Path f = dir.resolve(name);
        TorchSave.writeZip(f, Map.of("archive/data.pkl", pickle));
        return f;
    }

    private static FormatException refused(Path f) {
        FormatException e = assertThrows(FormatException.class, () -> TorchBinFile.open(f).close());
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        return e;
    }

    @Test
    void aListThatHoldsItselfUsedAsADictKeyIsRefused() throws Exception {
        FormatException e = refused(archive("selfref.bin", selfReferentialListAsKey()));
        assertTrue(e.getMessage().contains("unhashable"), e.getMessage());
    }

    @Test
    void deeplyNestedTupleKeysAreRefused() throws Exception {
        TorchSave.Pickle p = new TorchSave.Pickle().op(0x80).op(2).op('}').op('N');
        for (int i = 0; i < 100; i++) p.op(0x85); // ((((None,),),),...)
        FormatException e = refused(archive("deep.bin", p.op('N').op('s').op('.').o.toByteArray()));
        assertTrue(e.getMessage().contains("nested more than " + RestrictedUnpickler.MAX_KEY_DEPTH), e.getMessage());
    }

    @Test
    void tenMegabytesOfMemoizeStopAtTheMemoBound() throws Exception {
        FormatException e = refused(archive("memo.bin", memoBomb(10 << 20)));
        Matcher m = Pattern.compile("at byte (\\d+)").matcher(e.getMessage());
        assertTrue(m.find(), e.getMessage());
        assertTrue(Long.parseLong(m.group(1)) <= RestrictedUnpickler.MAX_MEMO + 8L, "stopped at the bound, not at the end: " + e.getMessage());
    }

    @Test
    void aTextLengthThatOverflowsThePositionIsRefused() throws Exception {
        FormatException e = refused(archive("text.bin", textLengthOverflow()));
        assertTrue(e.getMessage().contains("runs past the end"), e.getMessage());
    }

    @Test
    void long1PastTheEndIsRefused() throws Exception {
        FormatException e = refused(archive("long1.bin", long1PastTheEnd()));
        assertTrue(e.getMessage().contains("LONG1"), e.getMessage());
    }

    @Test
    void aNegativeZip64LocatorOffsetIsRefused() throws Exception {
        Path f = dir.resolve("zip64.bin");
        Files.write(f, negativeZip64Locator());
        FormatException e = refused(f);
        assertTrue(e.getMessage().contains("ZIP64 locator"), e.getMessage());
    }

    @Test
    void theCommandLineExitsTwoNamingTheFileWithoutAStackTrace() throws Exception {
        Path model = Files.createDirectories(dir.resolve("evil"));
        Files.writeString(model.resolve("config.json"), "{\"architectures\": [\"LlamaForCausalLM\"], \"num_hidden_layers\": 1}");
        TorchSave.writeZip(model.resolve("pytorch_model.bin"), Map.of("archive/data.pkl", selfReferentialListAsKey()));
        Path cfg = Files.writeString(dir.resolve("c.yaml"), "merge_method: linear\nmodels:\n  - model: " + model + "\n    parameters: {weight: 1}\n");
        TestSupport.Result r = TestSupport.cli(cfg.toString(), dir.resolve("out").toString(), "--quiet");
        assertEquals(2, r.exitCode(), r.stderr());
        assertTrue(r.stderr().contains(model.resolve("pytorch_model.bin").toString()), r.stderr());
        assertFalse(r.stderr().contains("\tat "), r.stderr());
    }
}
