package org.mergeengine.hub;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.MergeException;
import org.mergeengine.api.MergeService;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.formats.DType;
import org.mergeengine.plan.MergePlan;
import org.mergeengine.plan.PlanOptions;
import org.mergeengine.tools.SyntheticModel;

/**
 * A hub mirror that lies or stalls: every case ends, soon, with an error that names the file and
 * says what the server did (exit 2 from the command line), never a hang, an out-of-memory or a
 * stack trace. The timeouts below only stop a hanging build; none of the checks is about time.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class HubHostileTest {
    @TempDir
    static Path models;
    @TempDir
    Path tmp;
    FakeHub hub;
    static final String CONFIG = "merge_method: linear\nmodels:\n  - {model: org/base, parameters: {weight: 0.5}}\n  - {model: org/ft1, parameters: {weight: 0.5}}\n";

    @BeforeAll
    static void generate() throws Exception {
        SyntheticModel.Spec s = SyntheticModel.Spec.tiny();
        SyntheticModel.write(models.resolve("base"), s, DType.F32, 1, 1, 0, 0);
        SyntheticModel.write(models.resolve("ft1"), s, DType.F32, 1, 2, 0.2, 0);
    }

    @BeforeEach
    void start() throws Exception {
        hub = new FakeHub();
        hub.add("org/base", models.resolve("base"));
        hub.add("org/ft1", models.resolve("ft1"));
    }

    @AfterEach
    void stop() {
        hub.close();
    }

    HubSettings settings(Duration timeout, int retries) {
        return new HubSettings(URI.create(hub.url()), null, tmp.resolve("cache"), false, timeout, retries, Duration.ofMillis(10));
    }

    static HubException hubFailure(Throwable t) {
        Throwable c = MergeException.unwrap(t);
        assertTrue(c instanceof HubException, () -> "a HubException, not " + c);
        assertEquals(MergeException.Kind.USER, ((HubException) c).kind(), "exit 2");
        return (HubException) c;
    }

    HubClient.FileMeta meta(HubClient c) {
        String commit = hub.repos.get("org/base").commit();
        return c.head("org/base", commit, "model.safetensors");
    }

    @Test
    void aServerThatIgnoresRangeIsReadNoFurtherThanTheBytesAskedFor() throws Exception {
        hub.endlessIgnoringRange = true; // an endless body: reading it whole never ends
        try (MergeService svc = new MergeService(settings(Duration.ofSeconds(10), 1))) {
            MergePlan plan = svc.check(ConfigParser.parse(CONFIG), List.of(tmp), PlanOptions.defaults());
            assertNotNull(plan, "the headers were read from the first bytes of the endless bodies");
            assertFalse(plan.tensors().isEmpty());
            // The download itself must stop as soon as the body is longer than the file.
            Throwable t = assertThrows(CompletionException.class, () -> svc.merge(ConfigParser.parse(CONFIG), List.of(tmp), tmp.resolve("out"),
                    PlanOptions.defaults(), MergeOptions.defaults().withWorkers(1)).join());
            String m = hubFailure(t).getMessage();
            assertTrue(m.contains("model.safetensors") && m.contains("more than"), m);
        }
        assertFalse(Files.exists(tmp.resolve("out")));
    }

    @Test
    void aBodyTrickledOneByteEveryTwoSecondsEndsWithAnError() throws Exception {
        hub.trickleMillis = 2000;
        try (MergeService svc = new MergeService(settings(Duration.ofMillis(500), 1))) {
            Throwable t = assertThrows(CompletionException.class, () -> svc.merge(ConfigParser.parse(CONFIG), List.of(tmp), tmp.resolve("out"),
                    PlanOptions.defaults(), MergeOptions.defaults().withWorkers(1)).join());
            String m = hubFailure(t).getMessage();
            assertTrue(m.contains("model.safetensors") && m.contains("sent nothing for"), m);
        }
        assertFalse(Files.exists(tmp.resolve("out")));
    }

    @Test
    void aRevisionJsonLargerThanTheCapIsRefused() {
        hub.jsonPadding = 3 << 20;
        HubClient capped = new HubClient(settings(Duration.ofSeconds(10), 0), 1 << 20);
        String m = assertThrows(HubException.class, () -> capped.repoInfo("org/base", null)).getMessage();
        assertTrue(m.contains("more than the 1048576 bytes"), m);
        hub.jsonPadding = 1000;
        assertEquals(hub.repos.get("org/base").commit(), capped.repoInfo("org/base", null).commit(), "a reply under the cap is read");
    }

    @Test
    void redirectsOutsideHttpAndMalformedOnesAreRefused() {
        HubClient c = new HubClient(settings(Duration.ofSeconds(10), 0));
        for (String to : List.of("file:///etc/passwd", "ftp://127.0.0.1/blob", "http://[bad", "jar:file:/x!/y", "http:relative-without-host")) {
            hub.redirectTo = to;
            String m = assertThrows(HubException.class, () -> meta(c), to).getMessage();
            assertTrue(m.contains("org/base/model.safetensors") && m.contains("redirected"), m);
        }
        hub.redirectTo = null;
        assertEquals("127.0.0.1", meta(c).location().getHost(), "an http redirect is followed");
    }

    @Test
    void aSizeThatIsNotANumberIsAnError() {
        HubClient c = new HubClient(settings(Duration.ofSeconds(10), 0));
        for (String size : List.of("12abc", "", "-5", "99999999999999999999")) {
            hub.linkedSize = size;
            String m = assertThrows(HubException.class, () -> meta(c), size).getMessage();
            assertTrue(m.contains("org/base/model.safetensors") && m.contains("size"), m);
        }
    }

    @Test
    void aShortRangedReadIsAnError() {
        HubClient c = new HubClient(settings(Duration.ofSeconds(10), 0));
        HubClient.FileMeta m = meta(c);
        hub.shortRanges = true;
        for (long[] r : new long[][] {{0, 7}, {8, 100}}) {
            String msg = assertThrows(HubException.class, () -> c.range(m, r[0], r[1])).getMessage();
            assertTrue(msg.contains("org/base/model.safetensors") && msg.contains("short"), msg);
        }
        hub.shortRanges = false;
        assertEquals(8, c.range(m, 0, 7).length);
    }

    @Test
    void userInfoIsRemovedFromEveryUrlShown() {
        assertEquals("cannot reach http://host:8080/api (and https://h/x?q=a@b)",
                Urls.redact("cannot reach http://user:password@host:8080/api (and https://tok@h/x?q=a@b)"));
        assertEquals("pekko://merge-engine@10.0.0.1:2552, a@b.com", Urls.redact("pekko://merge-engine@10.0.0.1:2552, a@b.com"));
        assertFalse(new HubException("see HTTP://u:p@h/").getMessage().contains("u:p"));
        HubSettings s = new HubSettings(URI.create("http://user:password@127.0.0.1:1"), "hf_secret", tmp, false, Duration.ofSeconds(1), 0, Duration.ZERO);
        assertFalse(s.toString().contains("password") || s.toString().contains("hf_secret"), s.toString());
    }

    @Test
    void theTimeoutComesFromHfHubDownloadTimeout() {
        assertEquals(Duration.ofMillis(2500), HubSettings.fromEnvironment(Map.of("HF_HUB_DOWNLOAD_TIMEOUT", "2.5"), tmp, false).timeout());
        for (String bad : new String[] {"soon", "-1", "0"}) {
            assertEquals(Duration.ofSeconds(30), HubSettings.fromEnvironment(Map.of("HF_HUB_DOWNLOAD_TIMEOUT", bad), tmp, false).timeout(), bad);
        }
        assertEquals(Duration.ofSeconds(30), HubSettings.fromEnvironment(Map.of(), tmp, false).timeout());
    }

    /** From the command line, with credentials in HF_ENDPOINT: exit 2, one message, no stack trace, no password. */
    @Test
    void theCommandLineExitsWith2AndShowsNoCredentials() throws Exception {
        hub.redirectTo = "file:///etc/passwd";
        Files.writeString(tmp.resolve("c.yaml"), CONFIG);
        String java = ProcessHandle.current().info().command().orElse("java");
        List<String> cmd = new ArrayList<>(List.of(java, "-Xmx256m", "-cp", System.getProperty("java.class.path"), "org.mergeengine.cli.Main",
                "c.yaml", "out", "--cache-dir", tmp.resolve("cache").toString()));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(tmp.toFile()).redirectErrorStream(true).redirectOutput(tmp.resolve("log").toFile());
        pb.environment().put("HF_ENDPOINT", hub.url().replace("http://", "http://someone:pass-w0rd@"));
        pb.environment().remove("HF_TOKEN");
        pb.environment().put("HF_HOME", tmp.resolve("hf-home").toString());
        Process p = pb.start();
        assertTrue(p.waitFor(150, TimeUnit.SECONDS), "the run ended");
        String log = Files.readString(tmp.resolve("log"));
        assertEquals(2, p.exitValue(), log);
        assertTrue(log.contains("redirected") && log.contains("file:"), log);
        assertFalse(log.contains("pass-w0rd") || log.contains("someone"), log);
        assertFalse(log.contains("\tat ") || log.contains("Exception"), "no stack trace: " + log);
        assertFalse(Files.exists(tmp.resolve("out")));
    }
}
