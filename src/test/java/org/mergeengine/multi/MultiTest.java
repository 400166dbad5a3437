package org.mergeengine.multi;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.api.MergeService;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.formats.DType;
import org.mergeengine.hub.HubSettings;
import org.mergeengine.plan.PlanOptions;
import org.mergeengine.tools.SyntheticModel;

class MultiTest {
    @TempDir
    static Path models;
    @TempDir
    Path tmp;

    @BeforeAll
    static void generate() throws Exception {
        SyntheticModel.Spec s = SyntheticModel.Spec.tiny();
        SyntheticModel.write(models.resolve("base"), s, DType.F32, 1, 1, 0, 0);
        SyntheticModel.write(models.resolve("ft1"), s, DType.F32, 1, 2, 0.2, 0);
        SyntheticModel.write(models.resolve("ft2"), s, DType.F32, 1, 3, 0.2, 0);
    }

    static String dag(String m) {
        return MultiTestSupport.dag(m);
    }

    HubSettings offlineCache() {
        return new HubSettings(URI.create("http://127.0.0.1:1"), null, tmp.resolve("cache"), true, Duration.ofSeconds(5), 1, Duration.ofMillis(1));
    }

    Map<String, MultiRunner.StageResult> run(MergeService svc, String text, boolean force) {
        MultiConfig mc = MultiConfig.parse(text, tmp.resolve("stages"), tmp.resolve("final"));
        List<String> log = new ArrayList<>();
        List<MultiRunner.StageResult> r = new MultiRunner(svc, mc, List.of(tmp), PlanOptions.defaults(), MergeOptions.defaults().withWorkers(2), force,
                line -> {
                    synchronized (log) {
                        log.add(line);
                    }
                }).run().join();
        assertTrue(log.stream().anyMatch(l -> l.endsWith(": queued")), log.toString());
        return r.stream().collect(Collectors.toMap(MultiRunner.StageResult::label, Function.identity()));
    }

    @Test
    void stagesRunAsADagAndIndependentOnesOverlap() throws Exception {
        String m = models.toAbsolutePath() + "/";
        try (MergeService svc = new MergeService(offlineCache())) {
            Map<String, MultiRunner.StageResult> r = run(svc, dag(m), false);
            MultiRunner.StageResult a = r.get("a"), b = r.get("b"), c = r.get("c"), f = r.get("(final)");
            assertTrue(a.startNanos() < b.endNanos() && b.startNanos() < a.endNanos(), "a and b run at the same time");
            assertTrue(c.startNanos() >= Math.max(a.endNanos(), b.endNanos()), "c starts after both of its inputs");
            assertTrue(f.startNanos() >= c.endNanos(), "the final merge waits for c");
            for (MultiRunner.StageResult x : r.values()) assertEquals(MultiRunner.State.DONE, x.state());
            assertTrue(Files.exists(tmp.resolve("final/model.safetensors")));

            // each stage's bytes equal the same merge run on its own
            String alone = "merge_method: slerp\nbase_model: " + tmp.resolve("stages/a") + "\nparameters: {t: 0.4}\nmodels:\n  - model: "
                    + tmp.resolve("stages/a") + "\n  - model: " + tmp.resolve("stages/b") + "\n";
            svc.merge(ConfigParser.parse(alone), List.of(tmp), tmp.resolve("c-alone"), PlanOptions.defaults(), MergeOptions.defaults()).join();
            assertArrayEquals(Files.readAllBytes(tmp.resolve("c-alone/model.safetensors")), Files.readAllBytes(tmp.resolve("stages/c/model.safetensors")));

            Map<String, MultiRunner.StageResult> again = run(svc, dag(m), false);
            for (MultiRunner.StageResult x : again.values()) assertEquals(MultiRunner.State.SKIPPED, x.state(), x.label());
            Map<String, MultiRunner.StageResult> forced = run(svc, dag(m), true);
            for (MultiRunner.StageResult x : forced.values()) assertEquals(MultiRunner.State.DONE, x.state(), x.label());
        }
    }

    @Test
    void anInterruptedStageIsRedoneAndAChangedOneRerunsItsDownstream() throws Exception {
        String m = models.toAbsolutePath() + "/";
        try (MergeService svc = new MergeService(offlineCache())) {
            run(svc, dag(m), false);
            byte[] finalBytes = Files.readAllBytes(tmp.resolve("final/model.safetensors"));
            // b was killed while writing: its output is gone, a partial folder and a folder without marker are left
            org.mergeengine.engine.OutputFolder.deleteTree(tmp.resolve("stages/b"));
            Files.createDirectories(tmp.resolve("stages/.b.partial-1234"));
            Files.write(tmp.resolve("stages/.b.partial-1234/model-00001-of-00002.safetensors"), new byte[100]);
            Map<String, MultiRunner.StageResult> r = run(svc, dag(m), false);
            assertEquals(MultiRunner.State.DONE, r.get("b").state());
            assertEquals(MultiRunner.State.SKIPPED, r.get("a").state());
            assertEquals(MultiRunner.State.SKIPPED, r.get("c").state(), "b came back byte for byte, so c is still up to date");
            assertArrayEquals(finalBytes, Files.readAllBytes(tmp.resolve("final/model.safetensors")));

            Files.delete(tmp.resolve("stages/c/.merge-engine-complete.json"));
            r = run(svc, dag(m), false);
            assertEquals(MultiRunner.State.DONE, r.get("c").state(), "a folder without its marker is not a finished stage");

            String changed = dag(m).replace("{model: " + m + "ft2, parameters: {weight: 0.8}}", "{model: " + m + "ft2, parameters: {weight: 0.6}}");
            r = run(svc, changed, false);
            assertEquals(MultiRunner.State.SKIPPED, r.get("a").state());
            assertEquals(MultiRunner.State.DONE, r.get("b").state());
            assertEquals(MultiRunner.State.DONE, r.get("c").state());
            assertEquals(MultiRunner.State.DONE, r.get("(final)").state());
        }
    }

    @Test
    void namesAreCheckedAndOnlyModelReferencesAreRewritten() {
        String m = models.toAbsolutePath() + "/";
        ConfigException e = assertThrows(ConfigException.class, () -> MultiConfig.parse(
                "name: x\nmerge_method: linear\nmodels: [{model: y, parameters: {weight: 1}}]\n---\nname: y\nmerge_method: linear\nmodels: [{model: x, parameters: {weight: 1}}]\n",
                tmp, null));
        assertTrue(e.getMessage().contains("circular") && e.getMessage().contains("x") && e.getMessage().contains("y"), e.getMessage());
        e = assertThrows(ConfigException.class, () -> MultiConfig.parse("name: x\nmerge_method: linear\nmodels: [" + m + "base]\n---\nname: x\nmerge_method: linear\nmodels: [" + m + "ft1]\n", tmp, null));
        assertTrue(e.getMessage().contains("duplicate") && e.getMessage().contains("'x'"), e.getMessage());
        e = assertThrows(ConfigException.class, () -> MultiConfig.parse("merge_method: linear\nmodels: [" + m + "base]\n---\nmerge_method: linear\nmodels: [" + m + "ft1]\n", tmp, tmp));
        assertTrue(e.getMessage().contains("unnamed"), e.getMessage());
        MultiConfig mc = MultiConfig.parse("name: linear\nmerge_method: linear\nmodels: [{model: " + m + "base, parameters: {weight: 1}}]\n---\n"
                + "merge_method: linear\nbase_model: linear\nmodels:\n  - {model: linear, parameters: {weight: 1}}\n  - {model: " + m + "ft1, parameters: {weight: 1}}\n", tmp, tmp.resolve("out"));
        MultiConfig.Stage last = mc.stages().get(1);
        assertEquals("linear", last.config().mergeMethod(), "merge_method is not a model reference");
        assertEquals(tmp.resolve("linear").toAbsolutePath().toString(), last.config().baseModel().path());
        assertEquals(java.util.Set.of("linear"), last.dependsOn());
    }

    @Test
    void theCommandLine() throws Exception {
        Path cfg = Files.writeString(tmp.resolve("multi.yaml"), dag(models.toAbsolutePath() + "/"));
        TestSupport.Result r = TestSupport.cli("multi", cfg.toString(), "-I", tmp.resolve("stages").toString(), "--out-path", tmp.resolve("out").toString(),
                "--offline", "--cache-dir", tmp.resolve("cache").toString());
        assertEquals(0, r.exitCode(), r.stderr());
        assertTrue(r.stderr().contains("a: running") && r.stderr().contains("(final): done in"), r.stderr());
        r = TestSupport.cli("multi", cfg.toString(), "-I", tmp.resolve("stages").toString(), "--out-path", tmp.resolve("out").toString(),
                "--offline", "--cache-dir", tmp.resolve("cache").toString());
        assertTrue(r.stderr().contains("4 stage(s): 0 merged, 4 up to date"), r.stderr());
        r = TestSupport.cli("multi", cfg.toString(), "-I", tmp.resolve("stages").toString());
        assertEquals(2, r.exitCode());
        assertTrue(r.stderr().contains("--out-path"), r.stderr());
        assertFalse(Files.exists(tmp.resolve("nothing")));
    }
}
