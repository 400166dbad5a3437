package org.mergeengine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.TinyModels;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.formats.DType;
import org.mergeengine.plan.UnreadParameters;

/** Mistakes a mergekit user makes are caught: misspelt parameters, mistyped paths, and no false alarm on a standard config. */
class MistakesTest {
    @TempDir
    static Path dir;

    @BeforeAll
    static void models() throws Exception {
        TinyModels.write(dir, DType.BF16, 2);
    }

    static Path cfg(String name, String yaml) throws Exception {
        return Files.writeString(dir.resolve(name + ".yaml"), yaml);
    }

    static int count(String text, String part) {
        int n = 0;
        for (int i = text.indexOf(part); i >= 0; i = text.indexOf(part, i + 1)) n++;
        return n;
    }

    @Test
    void aMisspeltParameterIsAWarningWithItsPathAndTheClosestName() throws Exception {
        Path c = cfg("densty", "merge_method: ties\nbase_model: base\nmodels:\n  - model: ft1\n    parameters: {weight: 1.0, densty: 0.2}\n"
                + "  - model: ft2\n    parameters: {weight: 1.0, density: 0.5}\nparameters: {normalise: true}\n");
        TestSupport.Result r = TestSupport.cli(c.toString(), dir.resolve("densty-out").toString());
        assertEquals(0, r.exitCode(), "a warning, not an error: " + r.stderr());
        assertEquals(1, count(r.stderr(), "warning: models[0].parameters.densty: unknown parameter 'densty' (did you mean 'density'?)"), r.stderr());
        assertEquals(1, count(r.stderr(), "warning: parameters.normalise: unknown parameter 'normalise' (did you mean 'normalize'?)"), r.stderr());
        assertFalse(r.stderr().contains("ft2"), "a correct parameter is not reported: " + r.stderr());

        TestSupport.Result strict = TestSupport.cli(c.toString(), dir.resolve("densty-strict").toString(), "--strict");
        assertEquals(2, strict.exitCode());
        assertTrue(strict.stderr().contains("error: --strict"), strict.stderr());
        assertFalse(Files.exists(dir.resolve("densty-strict")), "nothing is written under --strict");
    }

    @Test
    void aMisspeltRequiredParameterIsNamedBeforeTheError() throws Exception {
        Path c = cfg("wieght", "merge_method: linear\nmodels:\n  - model: base\n    parameters: {wieght: 0.5}\n  - model: ft1\n    parameters: {weight: 0.5}\n");
        TestSupport.Result r = TestSupport.cli(c.toString(), dir.resolve("wieght-out").toString());
        assertEquals(2, r.exitCode());
        int warning = r.stderr().indexOf("models[0].parameters.wieght: unknown parameter 'wieght' (did you mean 'weight'?)");
        assertTrue(warning >= 0 && warning < r.stderr().indexOf("error:"), r.stderr());
    }

    @Test
    void anotherMethodsParameterIsOneWarningAndTheMergeRuns() throws Exception {
        Path c = cfg("template", "merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 0.5, density: 0.5}\n"
                + "  - model: ft1\n    parameters: {weight: 0.5}\n");
        TestSupport.Result r = TestSupport.cli(c.toString(), dir.resolve("template-out").toString(), "--json");
        assertEquals(0, r.exitCode(), r.stderr());
        assertEquals(1, count(r.stderr(), "warning: "), r.stderr());
        assertTrue(r.stderr().contains("models[0].parameters.density: 'density' is a parameter of") && r.stderr().contains("ties"), r.stderr());
        assertTrue(r.stdout().contains("'density' is a parameter of"), "--json lists the warning: " + r.stdout());
    }

    @Test
    void aStandardTiesConfigWarnsAboutNothing() throws Exception {
        Path c = cfg("ties", "merge_method: ties\nbase_model: base\nmodels:\n  - model: ft1\n    parameters: {weight: 0.5, density: 0.5}\n"
                + "  - model: ft2\n    parameters: {weight: 0.5, density: 0.5}\nparameters: {normalize: true, int8_mask: true}\ndtype: bfloat16\n");
        for (String[] extra : new String[][] {{}, {"-v"}, {"--dry-run"}}) {
            String[] args = new String[2 + extra.length];
            args[0] = c.toString();
            args[1] = dir.resolve("ties-out-" + extra.length + (extra.length > 0 ? extra[0] : "")).toString();
            System.arraycopy(extra, 0, args, 2, extra.length);
            TestSupport.Result r = TestSupport.cli(args);
            assertEquals(0, r.exitCode(), r.stderr());
            assertFalse(r.stderr().contains("warning"), "the base is never listed in mergekit's TIES configs: " + r.stderr());
        }
    }

    @Test
    void anUnlistedBaseThatLinearAveragesInIsStillSaid() throws Exception {
        Path c = cfg("linear-base", "merge_method: linear\nbase_model: base\nmodels:\n  - model: ft1\n    parameters: {weight: 0.5}\n"
                + "parameters: {weight: 0.5}\n");
        TestSupport.Result r = TestSupport.cli(c.toString(), dir.resolve("linear-base-out").toString());
        assertEquals(0, r.exitCode(), r.stderr());
        assertTrue(r.stderr().contains("not listed under models; linear averages it in"), r.stderr());
    }

    @Test
    void slicesAreCheckedAtEveryLevel() {
        List<String> w = UnreadParameters.check(ConfigParser.parse("merge_method: slerp\nbase_model: a\nslices:\n  - sources:\n"
                + "      - {model: a, layer_range: [0, 2], parameters: {tt: 0.1}}\n      - {model: b, layer_range: [0, 2]}\n"
                + "    parameters: {t: 0.5, wieght: 1}\n"));
        assertEquals(2, w.size(), w.toString());
        assertTrue(w.get(0).startsWith("slices[0].parameters.wieght: unknown parameter 'wieght' (did you mean 'weight'?)"), w.toString());
        assertTrue(w.get(1).startsWith("slices[0].sources[0].parameters.tt: unknown parameter 'tt' (did you mean 't'?)"), w.toString());
    }
}
