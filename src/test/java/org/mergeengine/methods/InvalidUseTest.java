package org.mergeengine.methods;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.formats.DType;
import org.mergeengine.tools.SyntheticModel;

/** Invalid uses of methods exit 2 with a message naming the method and the parameter, and write nothing. */
class InvalidUseTest {
    @TempDir
    static Path dir;

    @BeforeAll
    static void models() throws Exception {
        SyntheticModel.Spec s = SyntheticModel.Spec.tiny();
        for (int i = 0; i < 4; i++) SyntheticModel.write(dir.resolve("m" + i), s, DType.F32, 1, 10 + i, i == 0 ? 0 : 0.1, 0);
    }

    static String run(String yaml) throws Exception {
        Path cfg = Files.writeString(dir.resolve("cfg-" + System.nanoTime() + ".yaml"), yaml);
        Path out = dir.resolve("out-" + System.nanoTime());
        TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--quiet");
        assertEquals(2, r.exitCode(), r.stderr());
        assertTrue(!Files.exists(out), "no output folder");
        return r.stderr();
    }

    @Test
    void slerpWithoutBaseOrWithThreeModels() throws Exception {
        String e = run("merge_method: slerp\nparameters: {t: 0.5}\nmodels:\n  - model: m1\n  - model: m2\n");
        assertTrue(e.contains("slerp") && e.contains("base_model"), e);
        e = run("merge_method: slerp\nbase_model: m0\nparameters: {t: 0.5}\nmodels:\n  - model: m1\n  - model: m2\n");
        assertTrue(e.contains("slerp") && e.contains("exactly two"), e);
        e = run("merge_method: slerp\nbase_model: m0\nmodels:\n  - model: m1\n");
        assertTrue(e.contains("slerp") && e.contains("'t'"), e);
    }

    @Test
    void dellaEpsilonOutOfBounds() throws Exception {
        String e = run("merge_method: della\nbase_model: m0\nmodels:\n  - model: m1\n    parameters: {weight: 1, density: 0.5, epsilon: 0.6}\n");
        assertTrue(e.contains("della") && e.contains("epsilon") && e.contains("m1"), e);
        e = run("merge_method: della\nbase_model: m0\nmodels:\n  - model: m1\n    parameters: {weight: 1, density: 0.5, epsilon: 1.35}\n");
        assertTrue(e.contains("epsilon"), e);
    }

    @Test
    void missingRequiredWeight() throws Exception {
        String e = run("merge_method: ties\nbase_model: m0\nmodels:\n  - model: m1\n    parameters: {density: 0.5}\n");
        assertTrue(e.contains("models[0].parameters.weight") && e.contains("ties"), e);
    }

    @Test
    void modelStockNeedsThreeModels() throws Exception {
        String e = run("merge_method: model_stock\nbase_model: m0\nmodels:\n  - model: m1\n");
        assertTrue(e.contains("model_stock") && e.contains("at least 3"), e);
    }

    @Test
    void nearswapAndArceeFusionTakeOneModelPlusBase() throws Exception {
        for (String m : new String[] {"nearswap", "arcee_fusion"}) {
            String e = run("merge_method: " + m + "\nbase_model: m0\nparameters: {t: 0.1}\nmodels:\n  - model: m1\n  - model: m2\n");
            assertTrue(e.contains(m) && e.contains("exactly 1"), e);
        }
    }

    @Test
    void linearWeightsSummingToZero() throws Exception {
        String e = run("merge_method: linear\nmodels:\n  - model: m1\n    parameters: {weight: 1}\n  - model: m2\n    parameters: {weight: -1}\n");
        assertTrue(e.contains("weight") && e.contains("sum to zero"), e);
    }
}
