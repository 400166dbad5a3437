package org.mergeengine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.TinyModels;
import org.mergeengine.api.MergeService;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.config.MergeConfig;
import org.mergeengine.hub.HubSettings;
import org.mergeengine.plan.LocalModelResolver;
import org.mergeengine.plan.PlanOptions;
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

    @Test
    void aMistypedLocalPathFailsAtOnceWithItsYamlPath() throws Exception {
        Files.createDirectories(dir.resolve("models"));
        for (String[] c : new String[][] {{"./ft11", "did you mean 'ft1'?"}, {"models/ft1", ""}, {dir.resolve("nowhere/base").toString(), ""},
                {"~/no-such-merge-engine-folder", ""}}) {
            Path yaml = cfg("typo", "merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 0.5}\n  - model: " + c[0]
                    + "\n    parameters: {weight: 0.5}\n");
            TestSupport.Result r = TestSupport.cli(yaml.toString(), dir.resolve("typo-out").toString());
            assertEquals(2, r.exitCode(), r.stderr());
            assertTrue(r.stderr().startsWith("error: models[1].model: no such folder: '" + c[0] + "'"), r.stderr());
            assertTrue(r.stderr().contains(c[1]), r.stderr());
            assertFalse(r.stderr().contains("hub repository") || r.stderr().contains("null"), r.stderr());
        }
    }

    @Test
    void whatLooksLikeAPath() throws Exception {
        Files.createDirectories(dir.resolve("models"));
        try (LocalModelResolver r = new LocalModelResolver(List.of(dir))) {
            for (String p : new String[] {"./x", "../x", "/x/y", "~/x", "models/x"}) assertTrue(r.looksLikePath(p), p);
            for (String p : new String[] {"org/name", "gpt2", "meta-llama/Llama-3-8B"}) assertFalse(r.looksLikePath(p), p);
        }
    }

    @Test
    void aHubIdThatCannotBeReachedSaysWhyItWasTakenForOne() throws Exception {
        int closedPort;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            closedPort = s.getLocalPort();
        }
        HubSettings hub = new HubSettings(URI.create("http://127.0.0.1:" + closedPort), null, dir.resolve("hub-cache"), false, Duration.ofSeconds(5), 3,
                Duration.ofMillis(10));
        MergeConfig cfg = ConfigParser.parse("merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 0.5}\n"
                + "  - model: someorg/ft1\n    parameters: {weight: 0.5}\n");
        try (MergeService svc = new MergeService(hub)) {
            ConfigException e = assertThrows(ConfigException.class, () -> svc.check(cfg, List.of(dir), PlanOptions.defaults()));
            assertTrue(e.getMessage().startsWith("models[1].model: 'someorg/ft1' was taken as a hub repository, as no local folder has that name"),
                    e.getMessage());
            assertTrue(e.getMessage().contains("cannot reach 127.0.0.1") && !e.getMessage().contains("null"), e.getMessage());
        }
    }

    @Test
    void theHubCacheFollowsHome() {
        assertEquals(Path.of("/x", ".cache", "huggingface", "hub"), HubSettings.fromEnvironment(Map.of("HOME", "/x"), null, false).cacheDir());
        assertEquals(Path.of("/h", "hub"), HubSettings.fromEnvironment(Map.of("HOME", "/x", "HF_HOME", "/h"), null, false).cacheDir());
    }
}
