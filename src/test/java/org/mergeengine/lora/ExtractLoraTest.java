package org.mergeengine.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.TinyModels;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.tensor.Svd;

/** extract-lora, then apply the adapter: the fine-tune comes back within the SVD truncation error. */
class ExtractLoraTest {
    @TempDir
    static Path dir;

    @BeforeAll
    static void models() throws Exception {
        TinyModels.write(dir, DType.F32, 1);
    }

    static Path apply(Path adapter, String name) throws Exception {
        Path cfg = Files.writeString(dir.resolve(name + ".yaml"), "merge_method: passthrough\nmodels:\n  - model: base+" + dir.relativize(adapter) + "\n");
        Path out = dir.resolve(name + "-applied");
        TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--quiet");
        assertEquals(0, r.exitCode(), r.stderr());
        return out;
    }

    static TestSupport.Result extract(String... args) {
        String[] a = new String[args.length + 1];
        a[0] = "extract-lora";
        System.arraycopy(args, 0, a, 1, args.length);
        return TestSupport.cli(a);
    }

    @Test
    void truncationErrorEqualsTheDiscardedSingularValues() throws Exception {
        Path adapter = dir.resolve("rank8");
        TestSupport.Result r = extract("--model", dir.resolve("ft1").toString(), "--base", dir.resolve("base").toString(), "--max-rank", "8", adapter.toString());
        assertEquals(0, r.exitCode(), r.stderr());
        JsonNode cfg = Json.read(adapter.resolve("adapter_config.json"));
        assertEquals(8, cfg.get("r").asInt());
        assertEquals(8, cfg.get("lora_alpha").asInt());
        assertTrue(cfg.get("modules_to_save").toString().contains("embed_tokens"));
        Path applied = apply(adapter, "rank8");
        try (ModelFolder ft = ModelFolder.open(dir.resolve("ft1")); ModelFolder base = ModelFolder.open(dir.resolve("base"));
             ModelFolder got = ModelFolder.open(applied)) {
            assertArrayEquals(TestSupport.floats(ft, "model.embed_tokens.weight"), TestSupport.floats(got, "model.embed_tokens.weight"),
                    "embeddings are saved whole");
            int checked = 0;
            for (String name : ft.tensors().keySet()) {
                if (!name.contains("layers") || ft.tensor(name).info().rank() != 2) continue;
                long[] shape = ft.tensor(name).info().shape();
                float[] w = TestSupport.floats(ft, name), b = TestSupport.floats(base, name), o = TestSupport.floats(got, name);
                float[] d = new float[w.length];
                for (int i = 0; i < w.length; i++) d[i] = w[i] - b[i];
                Svd.Result s = Svd.exact(d, (int) shape[0], (int) shape[1]);
                double discarded = 0;
                for (int i = 8; i < s.n(); i++) discarded += s.s()[i] * s.s()[i];
                double err = 0;
                for (int i = 0; i < w.length; i++) err += (w[i] - o[i]) * (double) (w[i] - o[i]);
                assertTrue(discarded > 1e-3, "the test needs a delta of rank above 8");
                assertEquals(discarded, err, 1e-3 * discarded + 1e-6, name + ": error^2 = sum of the discarded sigma^2");
                checked++;
            }
            assertTrue(checked >= 28);
        }
    }

    @Test
    void fullRankReproducesTheFineTuneAndEpsilonCutsRanks() throws Exception {
        Path adapter = dir.resolve("full");
        assertEquals(0, extract("--model", dir.resolve("ft1").toString(), "--base", dir.resolve("base").toString(), "--max-rank", "64",
                "--no-distribute-scale", "--svd", "exact", adapter.toString()).exitCode());
        Path applied = apply(adapter, "full");
        try (ModelFolder ft = ModelFolder.open(dir.resolve("ft1")); ModelFolder got = ModelFolder.open(applied)) {
            for (String name : ft.tensors().keySet()) {
                assertArrayEquals(TestSupport.floats(ft, name), TestSupport.floats(got, name), 2e-5f, name);
            }
        }
        Path cut = dir.resolve("eps");
        assertEquals(0, extract("--model", dir.resolve("ft1").toString(), "--base", dir.resolve("base").toString(), "--max-rank", "32",
                "--sv-epsilon", "0.3", "-e", "mlp", cut.toString()).exitCode());
        JsonNode cfg = Json.read(cut.resolve("adapter_config.json"));
        assertTrue(cfg.get("rank_pattern").size() > 0, "modules cut below the top rank are listed: " + cfg);
        assertTrue(!cfg.get("target_modules").toString().contains("up_proj"), "excluded modules are left out");
        apply(cut, "eps");
    }

    @Test
    void randomizedSvdFindsTheTopSubspace() {
        int rows = 300, cols = 200, rank = 5;
        float[] m = new float[rows * cols];
        java.util.Random g = new java.util.Random(3);
        for (int k = 0; k < rank; k++) {
            double[] u = new double[rows], v = new double[cols];
            for (int i = 0; i < rows; i++) u[i] = g.nextGaussian();
            for (int j = 0; j < cols; j++) v[j] = g.nextGaussian();
            for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) m[i * cols + j] += (float) ((10 - k) * u[i] * v[j]);
        }
        Svd.Result exact = Svd.exact(m, rows, cols), approx = Svd.randomized(m, rows, cols, rank, 8, 2, 1);
        for (int k = 0; k < rank; k++) assertEquals(exact.s()[k], approx.s()[k], 1e-6 * exact.s()[0], "sigma " + k);
        assertTrue(exact.s()[rank] < 1e-3 * exact.s()[0]);
    }
}
