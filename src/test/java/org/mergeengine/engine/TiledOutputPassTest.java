package org.mergeengine.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.SafetensorsFile;
import org.mergeengine.tensor.Convert;
import org.mergeengine.tools.SyntheticModel;

/**
 * The output pass decodes inputs tile by tile straight from their bytes. Tensors here span several
 * tiles and chunks whose lengths are not multiples of the tile, inputs differ in dtype, and the
 * config's dtype casts on load: every element must be the definition's value, bit for bit.
 */
class TiledOutputPassTest {
    @TempDir
    static Path dir;

    // embeddings 310 x 96 = 29,760 elements, MLP 96 x 320 = 30,720: several tiles of 8,192 each
    static final SyntheticModel.Spec SPEC = new SyntheticModel.Spec(96, 320, 1, 310, 4, 2, false);

    @BeforeAll
    static void models() throws Exception {
        SyntheticModel.write(dir.resolve("a"), SPEC, DType.BF16, 1, 1, 0, 0);
        SyntheticModel.write(dir.resolve("b"), SPEC, DType.F16, 1, 7, 0.3, 0);
        SyntheticModel.write(dir.resolve("c"), SPEC, DType.F32, 1, 9, 0.3, 0);
        SyntheticModel.write(dir.resolve("p"), SPEC, DType.BF16, 1, 1, 0, 0);
        SyntheticModel.write(dir.resolve("q"), SPEC, DType.BF16, 1, 4, 0.3, 0);
        SyntheticModel.write(dir.resolve("r"), SPEC, DType.BF16, 1, 5, 0.3, 0);
    }

    @Test
    void bf16TilesSplitByParityGiveTheBytesOfFloat32InputsWithTheSameValues() throws Exception {
        // All-bf16 merges into bf16 take the split conversions; the same values stored as float32
        // take the plain ones. Chunks of odd lengths leave odd tiles, which are converted plainly.
        for (String m : new String[] {"p", "q", "r"}) {
            Path cfg = Files.writeString(dir.resolve("to-f32-" + m + ".yaml"), "merge_method: linear\ndtype: float32\nmodels:\n  - model: " + m + "\n    parameters: {weight: 1}\n");
            TestSupport.Result r = TestSupport.cli(cfg.toString(), dir.resolve(m + "32").toString(), "--quiet");
            assertEquals(0, r.exitCode(), r.stderr());
        }
        String[] methods = {
            "merge_method: linear\nmodels:\n  - model: %p\n    parameters: {weight: 0.5}\n  - model: %q\n    parameters: {weight: 0.3}\n"
                + "  - model: %r\n    parameters: {weight: 0.2}\n",
            "merge_method: task_arithmetic\nbase_model: %p\nmodels:\n  - model: %q\n    parameters: {weight: 0.7}\n  - model: %r\n    parameters: {weight: -0.4}\n",
            "merge_method: ties\nbase_model: %p\nmodels:\n  - model: %q\n    parameters: {weight: 0.7}\n  - model: %r\n    parameters: {weight: 0.6}\n",
            "merge_method: nearswap\nbase_model: %p\nparameters: {t: 0.001}\nmodels:\n  - model: %p\n  - model: %q\n",
        };
        for (int i = 0; i < methods.length; i++) {
            String bf16 = methods[i].replace("%p", "p").replace("%q", "q").replace("%r", "r") + "dtype: bfloat16\n";
            String f32 = methods[i].replace("%p", "p32").replace("%q", "q32").replace("%r", "r32") + "dtype: bfloat16\n";
            for (String chunk : new String[] {"10007", "4095", "1048576"}) {
                Path a = dir.resolve("split-" + i + "-" + chunk), b = dir.resolve("plain-" + i + "-" + chunk);
                TestSupport.Result ra = TestSupport.cli(Files.writeString(dir.resolve("s" + i + ".yaml"), bf16).toString(), a.toString(), "--chunk-elements", chunk, "--quiet");
                assertEquals(0, ra.exitCode(), ra.stderr());
                TestSupport.Result rb = TestSupport.cli(Files.writeString(dir.resolve("f" + i + ".yaml"), f32).toString(), b.toString(), "--chunk-elements", chunk, "--quiet");
                assertEquals(0, rb.exitCode(), rb.stderr());
                assertEquals(-1L, Files.mismatch(a.resolve("model.safetensors"), b.resolve("model.safetensors")), bf16 + " with chunk " + chunk);
            }
        }
        // Split tiles read from memory-mapped windows as well as from positional reads.
        Path mapped = dir.resolve("split-mapped");
        String prop = SafetensorsFile.MMAP_PROPERTY;
        String before = System.getProperty(prop);
        try {
            TestSupport.Result r = TestSupport.cli(dir.resolve("s0.yaml").toString(), mapped.toString(), "--chunk-elements", "10007", "--mmap", "--quiet");
            assertEquals(0, r.exitCode(), r.stderr());
        } finally {
            if (before == null) System.clearProperty(prop); else System.setProperty(prop, before);
        }
        assertEquals(-1L, Files.mismatch(mapped.resolve("model.safetensors"), dir.resolve("plain-0-10007").resolve("model.safetensors")));
    }

    @Test
    void linearOverMixedDtypesWithACastMatchesTheDefinitionForAnyChunking() throws Exception {
        String yaml = "merge_method: linear\ndtype: bfloat16\nmodels:\n"
                + "  - model: a\n    parameters: {weight: 0.6}\n"
                + "  - model: b\n    parameters: {weight: 0.25}\n"
                + "  - model: c\n    parameters: {weight: 0.15}\n";
        Path cfg = Files.writeString(dir.resolve("linear.yaml"), yaml);
        for (String chunk : new String[] {"10007", "1024", "1048576"}) {
            Path out = dir.resolve("out-" + chunk);
            TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--chunk-elements", chunk, "--quiet");
            assertEquals(0, r.exitCode(), r.stderr());
            float w0 = (float) (0.6 / (0.6 + 0.25 + 0.15)), w1 = (float) (0.25 / (0.6 + 0.25 + 0.15)), w2 = (float) (0.15 / (0.6 + 0.25 + 0.15));
            int checked = 0;
            try (ModelFolder got = ModelFolder.open(out); ModelFolder a = ModelFolder.open(dir.resolve("a"));
                 ModelFolder b = ModelFolder.open(dir.resolve("b")); ModelFolder c = ModelFolder.open(dir.resolve("c"))) {
                for (String name : a.tensors().keySet()) {
                    assertEquals(DType.BF16, got.tensor(name).info().dtype(), name);
                    float[] x = TestSupport.floats(a, name), y = TestSupport.floats(b, name), z = TestSupport.floats(c, name);
                    float[] o = TestSupport.floats(got, name);
                    for (int i = 0; i < o.length; i++) {
                        float yb = Convert.roundTo(DType.BF16, y[i]), zb = Convert.roundTo(DType.BF16, z[i]);
                        float want = Convert.roundTo(DType.BF16, w0 * x[i] + w1 * yb + w2 * zb);
                        if (Float.floatToRawIntBits(want) != Float.floatToRawIntBits(o[i])) {
                            throw new AssertionError(name + "[" + i + "] with chunk " + chunk + ": want " + want + ", got " + o[i]);
                        }
                        checked++;
                    }
                }
            }
            assertTrue(checked > 100_000, "checked " + checked);
        }
    }

    @Test
    void taskArithmeticFromMemoryMappedInputsGivesTheBytesOfPositionalReads() throws Exception {
        String yaml = "merge_method: task_arithmetic\nbase_model: a\nmodels:\n"
                + "  - model: b\n    parameters: {weight: 0.7}\n"
                + "  - model: c\n    parameters: {weight: -0.4}\n";
        Path cfg = Files.writeString(dir.resolve("ta.yaml"), yaml);
        Path plain = dir.resolve("ta-plain"), mapped = dir.resolve("ta-mapped");
        assertEquals(0, TestSupport.cli(cfg.toString(), plain.toString(), "--chunk-elements", "5000", "--quiet").exitCode());
        String prop = SafetensorsFile.MMAP_PROPERTY;
        String before = System.getProperty(prop);
        try {
            assertEquals(0, TestSupport.cli(cfg.toString(), mapped.toString(), "--chunk-elements", "5000", "--mmap", "--quiet").exitCode());
        } finally {
            if (before == null) System.clearProperty(prop); else System.setProperty(prop, before);
        }
        try (ModelFolder p = ModelFolder.open(plain); ModelFolder m = ModelFolder.open(mapped); ModelFolder a = ModelFolder.open(dir.resolve("a"))) {
            for (String name : a.tensors().keySet()) {
                float[] x = TestSupport.floats(p, name), y = TestSupport.floats(m, name);
                assertEquals(x.length, y.length, name);
                for (int i = 0; i < x.length; i++) assertEquals(Float.floatToRawIntBits(x[i]), Float.floatToRawIntBits(y[i]), name + "[" + i + "]");
            }
        }
    }

    @Test
    void methodsWithPassesGiveTheSameBytesStreamedAsKeptInMemory() throws Exception {
        // With a small budget no tensor is kept in memory between passes: every pass streams chunks
        // from the files again instead of reusing decoded ones.
        String[] yamls = {
            "merge_method: ties\nbase_model: a\nmodels:\n  - model: b\n    parameters: {weight: 0.6, density: 0.4}\n"
                + "  - model: c\n    parameters: {weight: 0.5, density: 0.7}\n",
            "merge_method: dare_ties\nbase_model: a\nmodels:\n  - model: b\n    parameters: {weight: 0.6, density: 0.5}\n"
                + "  - model: c\n    parameters: {weight: 0.5, density: 0.5}\n",
            "merge_method: breadcrumbs_ties\nbase_model: a\nmodels:\n  - model: b\n    parameters: {weight: 1, density: 0.8, gamma: 0.05}\n"
                + "  - model: c\n    parameters: {weight: 1, density: 0.8, gamma: 0.05}\n",
            "merge_method: slerp\nbase_model: a\nparameters: {t: 0.3}\nmodels:\n  - model: a\n  - model: c\n",
        };
        for (int m = 0; m < yamls.length; m++) {
            Path cfg = Files.writeString(dir.resolve("passes-" + m + ".yaml"), yamls[m]);
            Path kept = dir.resolve("kept-" + m), streamed = dir.resolve("streamed-" + m);
            TestSupport.Result k = TestSupport.cli(cfg.toString(), kept.toString(), "--chunk-elements", "4096", "--quiet");
            assertEquals(0, k.exitCode(), k.stderr());
            TestSupport.Result st = TestSupport.cli(cfg.toString(), streamed.toString(), "--chunk-elements", "4096", "--max-memory", "64k", "--quiet");
            assertEquals(0, st.exitCode(), st.stderr());
            assertEquals(-1L, Files.mismatch(kept.resolve("model.safetensors"), streamed.resolve("model.safetensors")), yamls[m]);
        }
    }
}
