package org.mergeengine.golden;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.TensorInfo;

/**
 * Runs the engine on every case of the shared golden set and compares with the expected outputs by
 * the rule in each case's check.json: exact, ties-aware, statistical, or error.
 */
class GoldenParityTest {
    @TempDir
    Path tmp;

    static Path goldenDir() {
        return TestSupport.shared().resolve("golden");
    }

    /** Whether the environment is a CI run (CI=true, as CI services set it). */
    static boolean inCi(Map<String, String> env) {
        String ci = env.get("CI");
        return ci != null && !ci.isBlank() && !ci.equalsIgnoreCase("false") && !ci.equals("0");
    }

    @Test
    void ciIsRecognisedFromItsVariable() {
        assertTrue(inCi(Map.of("CI", "true")));
        assertTrue(inCi(Map.of("CI", "1")));
        assertFalse(inCi(Map.of()));
        assertFalse(inCi(Map.of("CI", "false")));
    }

    @TestFactory
    Stream<DynamicTest> goldenCases() {
        Path dir = goldenDir();
        boolean found = Files.isRegularFile(dir.resolve("index.json"));
        // Outside CI a checkout without the shared folder skips these cases; in CI their absence is a failure, not a pass.
        if (inCi(System.getenv())) assertTrue(found, "golden data not found at " + dir + " (CI must run the golden cases)");
        Assumptions.assumeTrue(found, "golden data not found at " + dir);
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : Json.read(dir.resolve("index.json")).get("cases")) {
            String name = c.get("name").asText();
            tests.add(DynamicTest.dynamicTest(name, () -> runCase(dir.resolve(name))));
        }
        assertTrue(tests.size() >= 14, "expected every golden case, found " + tests.size());
        return tests.stream();
    }

    void runCase(Path caseDir) {
        JsonNode check = Json.read(caseDir.resolve("check.json"));
        String kind = check.get("kind").asText();
        Path out = tmp.resolve(caseDir.getFileName().toString());
        TestSupport.Result r = TestSupport.cli(caseDir.resolve("config.yaml").toString(), out.toString(), "--quiet");
        if (kind.equals("error")) {
            assertNotEquals(0, r.exitCode(), "the engine must reject this config: " + check.get("why").asText());
            assertEquals(2, r.exitCode(), "bad config exits 2: " + r.stderr());
            assertTrue(r.stderr().contains("error:"), r.stderr());
            assertFalse(Files.exists(out), "no output folder may be left behind");
            return;
        }
        assertEquals(0, r.exitCode(), () -> "merge failed: " + r.stderr());
        for (JsonNode f : check.get("output").get("required_files")) {
            String file = f.asText();
            if (file.startsWith("model.safetensors")) continue;
            assertTrue(Files.isRegularFile(out.resolve(file)), "output lacks " + file);
        }
        JsonNode outCfg = Json.read(out.resolve("config.json"));
        for (Iterator<Map.Entry<String, JsonNode>> it = check.get("output").get("config_json").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            assertEquals(e.getValue(), outCfg.get(e.getKey()), "config.json " + e.getKey());
        }
        try (ModelFolder got = ModelFolder.open(out)) {
            assertEquals(check.get("output").get("tensors").asInt(), got.tensors().size(), "tensor count");
            switch (kind) {
                case "exact":
                case "ties-aware":
                    compareExact(caseDir, check, got);
                    break;
                case "statistical":
                    StatisticalCheck.run(caseDir, check, got);
                    break;
                default:
                    fail("unknown kind " + kind);
            }
        }
    }

    static void compareExact(Path caseDir, JsonNode check, ModelFolder got) {
        double rtol = check.get("effective_rtol").asDouble();
        JsonNode ambiguous = check.has("ambiguous") ? check.get("ambiguous") : Json.MAPPER.createObjectNode();
        try (ModelFolder exp = ModelFolder.open(caseDir.resolve("expected"))) {
            assertEquals(exp.tensors().keySet(), got.tensors().keySet(), "tensor names");
            boolean byToken = check.has("tokenizer");
            for (String name : exp.tensors().keySet()) {
                TensorInfo ti = exp.tensor(name).info(), gi = got.tensor(name).info();
                assertArrayEquals(ti.shape(), gi.shape(), name + " shape");
                assertEquals(ti.dtype(), gi.dtype(), name + " dtype");
                float[] ref = TestSupport.floats(exp, name), out = TestSupport.floats(got, name);
                if (byToken && (name.contains("embed_tokens") || name.contains("lm_head"))) {
                    out = TokenRows.reorder(caseDir.resolve("expected"), got.dir(), out, (int) ti.shape()[1]);
                }
                double mean = 0;
                for (float v : ref) mean += Math.abs(v);
                mean /= Math.max(1, ref.length);
                JsonNode amb = ambiguous.get(name);
                for (int i = 0; i < ref.length; i++) {
                    if (close(out[i], ref[i], rtol, mean)) continue;
                    boolean accepted = false;
                    if (amb != null) {
                        for (JsonNode a : amb) {
                            if (a.get("index").asInt() != i) continue;
                            for (JsonNode v : a.get("accepted")) accepted |= close(out[i], v.asDouble(), rtol, mean);
                        }
                    }
                    if (!accepted) fail(name + "[" + i + "]: got " + out[i] + ", expected " + ref[i] + " (rtol " + rtol + ")");
                }
            }
        }
    }

    static boolean close(double out, double ref, double rtol, double meanAbs) {
        return Math.abs(out - ref) <= rtol * Math.abs(ref) + rtol * meanAbs;
    }
}
