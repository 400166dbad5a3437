package org.mergeengine.formats;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.MergeException;
import org.mergeengine.TestSupport;
import org.mergeengine.tools.SyntheticModel;

/** PyTorch .bin checkpoints through the restricted reader. */
class TorchBinFileTest {
    @TempDir
    Path dir;

    static Map<String, TorchSave.T> sample() {
        Map<String, TorchSave.T> m = new LinkedHashMap<>();
        m.put("w", new TorchSave.T(DType.F32, new long[] {2, 3}, new float[] {1, 2, 3, 4, 5, 6}));
        m.put("b", new TorchSave.T(DType.BF16, new long[] {4}, new float[] {0.5f, -1, 2, 8}));
        m.put("h", new TorchSave.T(DType.F16, new long[] {1, 2}, new float[] {0.25f, -3}));
        return m;
    }

    @Test
    void readsTensorsLazilyAtTheirOffsets() throws Exception {
        for (boolean params : new boolean[] {false, true}) {
            Path f = dir.resolve("m" + params + ".bin");
            TorchSave.save(f, sample(), params);
            try (TorchBinFile t = TorchBinFile.open(f)) {
                assertEquals(List.of("w", "b", "h"), List.copyOf(t.tensors().keySet()));
                for (Map.Entry<String, TorchSave.T> e : sample().entrySet()) {
                    TensorInfo ti = t.tensors().get(e.getKey());
                    assertArrayEquals(e.getValue().shape(), ti.shape());
                    float[] got = new float[(int) ti.numel()];
                    org.mergeengine.tensor.Convert.decode(ti.dtype(), t.read(ti, 0, (int) ti.byteSize()), got, 0, got.length);
                    assertArrayEquals(e.getValue().values(), got, e.getKey());
                }
            }
        }
    }

    @Test
    void aPickleNamingAnyOtherGlobalIsRefused() throws Exception {
        TorchSave.Pickle p = new TorchSave.Pickle();
        p.op(0x80).op(2).global("os", "system").str("echo pwned").op(0x85).op('R').op('.');
        Path f = dir.resolve("evil.bin");
        TorchSave.writeZip(f, Map.of("archive/data.pkl", p.o.toByteArray()));
        FormatException e = assertThrows(FormatException.class, () -> TorchBinFile.open(f));
        assertTrue(e.getMessage().contains("os.system") && e.getMessage().contains("evil.bin"), e.getMessage());
        TorchSave.Pickle q = new TorchSave.Pickle();
        q.op(0x80).op(2).global("builtins", "eval").str("1").op(0x85).op('R').op('.');
        TorchSave.writeZip(f, Map.of("archive/data.pkl", q.o.toByteArray()));
        assertTrue(assertThrows(FormatException.class, () -> TorchBinFile.open(f)).getMessage().contains("builtins.eval"));
        TorchSave.Pickle r = new TorchSave.Pickle();
        r.op(0x80).op(2).op('}').op('c' + 1).op('.'); // an opcode outside the allow-list
        TorchSave.writeZip(f, Map.of("archive/data.pkl", r.o.toByteArray()));
        assertTrue(assertThrows(FormatException.class, () -> TorchBinFile.open(f)).getMessage().contains("not allowed"));
    }

    @Test
    void nonContiguousAndOutOfRangeTensorsAreErrors() throws Exception {
        Map<String, TorchSave.T> m = new LinkedHashMap<>();
        m.put("t", new TorchSave.T(DType.F32, new long[] {2, 3}, new float[6], new long[] {1, 2}));
        Path f = dir.resolve("nc.bin");
        TorchSave.save(f, m, false);
        assertTrue(assertThrows(FormatException.class, () -> TorchBinFile.open(f)).getMessage().contains("contiguous"));
        byte[] good = Files.readAllBytes(f);
        Files.write(f, java.util.Arrays.copyOf(good, good.length / 2));
        assertThrows(FormatException.class, () -> TorchBinFile.open(f));
    }

    @Test
    void aBinModelMergesLikeItsSafetensorsTwin() throws Exception {
        SyntheticModel.Spec s = SyntheticModel.Spec.tiny();
        SyntheticModel.write(dir.resolve("st"), s, DType.BF16, 1, 1, 0, 0);
        SyntheticModel.write(dir.resolve("ft"), s, DType.BF16, 1, 2, 0.2, 0);
        Path bin = Files.createDirectories(dir.resolve("bin"));
        Map<String, TorchSave.T> half1 = new LinkedHashMap<>(), half2 = new LinkedHashMap<>();
        Map<String, String> weightMap = new LinkedHashMap<>();
        try (ModelFolder m = ModelFolder.open(dir.resolve("st"))) {
            int i = 0;
            for (String name : m.tensors().keySet()) {
                TensorInfo t = m.tensor(name).info();
                TorchSave.T v = new TorchSave.T(t.dtype(), t.shape(), TestSupport.floats(m, name));
                String shard = (i++ % 2 == 0) ? "pytorch_model-00001-of-00002.bin" : "pytorch_model-00002-of-00002.bin";
                (shard.contains("00001-of") ? half1 : half2).put(name, v);
                weightMap.put(name, shard);
            }
        }
        TorchSave.save(bin.resolve("pytorch_model-00001-of-00002.bin"), half1, true);
        TorchSave.save(bin.resolve("pytorch_model-00002-of-00002.bin"), half2, false);
        var idx = Json.MAPPER.createObjectNode();
        idx.putObject("metadata").put("total_size", 0);
        var wm = idx.putObject("weight_map");
        weightMap.forEach(wm::put);
        Json.write(bin.resolve("pytorch_model.bin.index.json"), idx);
        for (String f : new String[] {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
            Files.copy(dir.resolve("st").resolve(f), bin.resolve(f));
        }
        String yaml = "merge_method: linear\nmodels:\n  - {model: %s, parameters: {weight: 0.6}}\n  - {model: " + dir.resolve("ft") + ", parameters: {weight: 0.4}}\n";
        Path a = Files.writeString(dir.resolve("a.yaml"), String.format(yaml, dir.resolve("st")));
        Path b = Files.writeString(dir.resolve("b.yaml"), String.format(yaml, bin));
        assertEquals(0, TestSupport.cli(a.toString(), dir.resolve("out-st").toString(), "--quiet").exitCode());
        TestSupport.Result r = TestSupport.cli(b.toString(), dir.resolve("out-bin").toString(), "--quiet");
        assertEquals(0, r.exitCode(), r.stderr());
        // The output layout follows the inputs' shard order, so compare tensor by tensor.
        try (ModelFolder x = ModelFolder.open(dir.resolve("out-st")); ModelFolder y = ModelFolder.open(dir.resolve("out-bin"))) {
            assertEquals(x.tensors().keySet(), y.tensors().keySet());
            for (String name : x.tensors().keySet()) {
                assertEquals(x.tensor(name).info().dtype(), y.tensor(name).info().dtype());
                assertArrayEquals(TestSupport.floats(x, name), TestSupport.floats(y, name), name);
            }
        }
    }

    @Test
    void mutatedArchivesEndInAClearErrorOrACorrectRead() throws Exception {
        Path f = dir.resolve("seed.bin");
        TorchSave.save(f, sample(), true);
        byte[] good = Files.readAllBytes(f);
        Random rnd = new Random(7);
        int rejected = 0;
        for (int i = 0; i < 3000; i++) {
            byte[] m = good.clone();
            int kind = rnd.nextInt(3);
            if (kind == 0) for (int k = 0; k < 1 + rnd.nextInt(4); k++) m[rnd.nextInt(m.length)] ^= (byte) (1 << rnd.nextInt(8));
            else if (kind == 1) m = java.util.Arrays.copyOf(m, rnd.nextInt(m.length));
            else m[rnd.nextInt(Math.min(m.length, 600))] = (byte) rnd.nextInt(256);
            Path c = dir.resolve("case.bin");
            Files.write(c, m);
            try (TorchBinFile t = TorchBinFile.open(c)) {
                for (TensorInfo ti : t.tensors().values()) t.read(ti, 0, (int) ti.byteSize());
            } catch (MergeException e) {
                rejected++;
                assertTrue(e.getMessage().contains("case.bin"), e.getMessage());
            } catch (RuntimeException | OutOfMemoryError e) {
                fail("case " + i + " ended in " + e);
            }
        }
        System.out.println(".bin fuzz: 3000 cases, " + rejected + " rejected with a clear error");
        assertTrue(rejected > 0);
    }
}
