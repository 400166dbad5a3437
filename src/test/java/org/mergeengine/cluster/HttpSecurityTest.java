package org.mergeengine.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.hub.HubSettings;

/** The node's HTTP interface against what a web page, a DNS-rebinding page or a stranger on the port can send. */
class HttpSecurityTest {
    @TempDir
    static Path dir;
    static MergeNode node;
    static HttpFrontend http;
    static HttpServer teapot;
    static final String CONFIG = "merge_method: linear\nmodels:\n  - model: org/missing-a\n    parameters: {weight: 0.5}\n"
            + "  - model: org/missing-b\n    parameters: {weight: 0.5}\n";

    @BeforeAll
    static void start() throws Exception {
        // A "hub" that answers every request with 418: its failures name the URL they went to.
        teapot = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        teapot.createContext("/", ex -> {
            ex.sendResponseHeaders(418, -1);
            ex.close();
        });
        teapot.start();
        HubSettings hub = new HubSettings(URI.create("http://someone:s3cret-pw@127.0.0.1:" + teapot.getAddress().getPort()), null,
                dir.resolve("cache"), false, Duration.ofSeconds(5), 0, Duration.ofMillis(1));
        node = MergeNode.start(MergeNode.Settings.local(1, List.of()).withExtra(ClusterTestSupport.FAST).withHub(hub));
        http = HttpFrontend.start(node, HttpFrontend.Settings.of("127.0.0.1", 0).withToken(null, dir.resolve("tokens/http-{port}.token")));
    }

    @AfterAll
    static void stop() {
        if (http != null) http.close();
        if (node != null) node.close();
        if (teapot != null) teapot.stop(0);
    }

    static Map<String, String> auth() {
        return Map.of("Authorization", "Bearer " + http.token());
    }

    static Map<String, String> with(Map<String, String> a, String k, String v) {
        Map<String, String> m = new LinkedHashMap<>(a);
        m.put(k, v);
        return m;
    }

    static String outQuery(String name) {
        return "/merges?out=" + URLEncoder.encode(dir.resolve(name).toString(), StandardCharsets.UTF_8);
    }

    static void assertJsonError(RawHttp.Response r, int status) {
        assertEquals(status, r.status(), r.body());
        assertEquals("application/json", r.headers().get("content-type"));
        assertFalse(r.json().path("error").asText().isBlank(), "an error message: " + r.body());
    }

    @Test
    void theTokenIsWrittenToAFileOnlyTheUserCanRead() throws Exception {
        Path f = dir.resolve("tokens/http-" + http.port() + ".token");
        assertEquals(f, http.tokenFile());
        assertEquals(http.token(), Files.readString(f).strip());
        assertTrue(http.token().length() >= 32, "a token of at least 32 characters: " + http.token());
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(f)));
        assertNotEquals(http.token(), HttpFrontend.newToken(), "tokens are random");
    }

    @Test
    void everyRequestNeedsTheToken() throws Exception {
        int before = node.submissions().size();
        for (String path : List.of("/merges", "/merges/m-1-1", "/cluster")) {
            assertJsonError(RawHttp.send(http.port(), "GET", path, Map.of(), null, false), 401);
            assertJsonError(RawHttp.send(http.port(), "GET", path, Map.of("Authorization", "Bearer wrong"), null, false), 401);
        }
        String prefix = http.token().substring(0, 10);
        assertJsonError(RawHttp.send(http.port(), "GET", "/merges", Map.of("Authorization", "Bearer " + prefix), null, false), 401);
        var post = RawHttp.send(http.port(), "POST", outQuery("no-token"), Map.of("Content-Type", "application/yaml"),
                CONFIG.getBytes(StandardCharsets.UTF_8), false);
        assertJsonError(post, 401);
        assertEquals("Bearer", post.headers().get("www-authenticate"));
        assertEquals(before, node.submissions().size(), "nothing was queued");
        assertEquals(200, RawHttp.send(http.port(), "GET", "/merges", auth(), null, false).status(), "the right token is let in");
        assertEquals(200, RawHttp.send(http.port(), "GET", "/cluster", auth(), null, false).status());
    }

    @Test
    void aHostOtherThanTheBoundAddressIsRefused() throws Exception {
        // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 sends its own name as Host.
        for (String host : List.of("evil.example:" + http.port(), "evil.example", "127.0.0.1.evil.example:" + http.port(), "127.0.0.1:1")) {
            assertJsonError(RawHttp.send(http.port(), "GET", "/merges", with(auth(), "Host", host), null, false), 403);
        }
        for (String host : List.of("127.0.0.1:" + http.port(), "localhost:" + http.port(), "LOCALHOST:" + http.port())) {
            assertEquals(200, RawHttp.send(http.port(), "GET", "/merges", with(auth(), "Host", host), null, false).status(), host);
        }
    }

    @Test
    void anOriginIsRefusedUnlessAllowed() throws Exception {
        int before = node.submissions().size();
        var r = RawHttp.send(http.port(), "POST", outQuery("from-a-page"), with(with(auth(), "Origin", "http://evil.example"), "Content-Type", "application/yaml"),
                CONFIG.getBytes(StandardCharsets.UTF_8), false);
        assertJsonError(r, 403);
        assertJsonError(RawHttp.send(http.port(), "GET", "/merges", with(auth(), "Origin", "null"), null, false), 403);
        assertEquals(before, node.submissions().size());
        try (HttpFrontend other = HttpFrontend.start(node, HttpFrontend.Settings.of("127.0.0.1", 0).withToken("t0ken-given-by-the-user", null)
                .withAllowed(List.of(), List.of("https://ops.example")))) {
            Map<String, String> a = Map.of("Host", "127.0.0.1:" + other.port(), "Authorization", "Bearer t0ken-given-by-the-user");
            assertEquals("t0ken-given-by-the-user", other.token());
            assertEquals(200, RawHttp.send(other.port(), "GET", "/merges", with(a, "Origin", "https://ops.example"), null, false).status());
            assertJsonError(RawHttp.send(other.port(), "GET", "/merges", with(a, "Origin", "https://ops.example.evil"), null, false), 403);
        }
    }

    @Test
    void aPostMustSayItsBodyIsYamlOrJson() throws Exception {
        int before = node.submissions().size();
        for (String type : new String[] {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", null}) {
            var r = RawHttp.send(http.port(), "POST", outQuery("plain"), with(auth(), "Content-Type", type), CONFIG.getBytes(StandardCharsets.UTF_8), false);
            assertJsonError(r, 415);
        }
        assertEquals(before, node.submissions().size(), "nothing was queued");
        assertFalse(Files.exists(dir.resolve("plain")));
        var ok = RawHttp.send(http.port(), "POST", outQuery("yaml"), with(auth(), "Content-Type", "application/yaml; charset=utf-8"),
                CONFIG.getBytes(StandardCharsets.UTF_8), false);
        assertEquals(202, ok.status(), ok.body());
        assertEquals(before + 1, node.submissions().size());
    }

    @Test
    void bodiesOverOneMegabyteAre413() throws Exception {
        int before = node.submissions().size();
        Map<String, String> h = with(with(auth(), "Content-Type", "application/yaml"), "Content-Length", Long.toString(6L << 20));
        assertJsonError(RawHttp.headersOnly(http.port(), "POST", outQuery("big"), h), 413); // refused on its declared length, unread
        byte[] big = new byte[(int) HttpFrontend.DEFAULT_MAX_BODY + 1];
        Arrays.fill(big, (byte) '#');
        assertJsonError(RawHttp.send(http.port(), "POST", outQuery("big"), with(auth(), "Content-Type", "application/yaml"), big, true), 413);
        assertEquals(before, node.submissions().size());
    }

    @Test
    void aPathThatCannotBeAPathGetsAJsonError() throws Exception {
        var r = RawHttp.send(http.port(), "POST", "/merges?out=%00", with(auth(), "Content-Type", "application/yaml"), CONFIG.getBytes(StandardCharsets.UTF_8), false);
        assertJsonError(r, 400);
        assertJsonError(RawHttp.send(http.port(), "GET", "/nothing-here", auth(), null, false), 404);
        assertJsonError(RawHttp.send(http.port(), "DELETE", "/merges", auth(), null, false), 405);
        assertJsonError(RawHttp.send(http.port(), "POST", "/merges?out=x&random_seed=abc", with(auth(), "Content-Type", "application/yaml"),
                CONFIG.getBytes(StandardCharsets.UTF_8), false), 400);
    }

    @Test
    void theHubsCredentialsNeverReachTheErrorField() throws Exception {
        var r = RawHttp.send(http.port(), "POST", outQuery("creds"), with(auth(), "Content-Type", "application/yaml"), CONFIG.getBytes(StandardCharsets.UTF_8), false);
        assertEquals(202, r.status(), r.body());
        String id = r.json().get("id").asText();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        RawHttp.Response st;
        while (true) {
            st = RawHttp.send(http.port(), "GET", "/merges/" + id, auth(), null, false);
            if (st.json().path("state").asText().equals("failed")) break;
            assertTrue(System.nanoTime() < deadline, "the merge did not fail: " + st.body());
            Thread.sleep(50);
        }
        String error = st.json().path("error").asText();
        assertTrue(error.contains("418") && error.contains("127.0.0.1"), "the hub's answer and where it came from: " + error);
        assertFalse(error.contains("s3cret-pw") || error.contains("someone"), "no user info: " + error);
        String all = RawHttp.send(http.port(), "GET", "/merges", auth(), null, false).body();
        assertFalse(all.contains("s3cret-pw"), all);
    }

    /** A node whose every answer fails in the worst ways, to show the interface keeps answering. */
    static final class Failing implements HttpFrontend.Backend {
        final AtomicInteger calls = new AtomicInteger();

        @Override
        public Submission submit(MergeNode.Request r) {
            throw new IllegalStateException("boom");
        }

        @Override
        public Optional<Submission> submission(String id) {
            throw new StackOverflowError();
        }

        @Override
        public List<Submission> submissions() {
            if (calls.incrementAndGet() <= 3) throw new OutOfMemoryError("Java heap space");
            return List.of();
        }

        @Override
        public String address() {
            return "pekko://merge-engine@127.0.0.1:1";
        }

        @Override
        public List<String> members() {
            return List.of();
        }

        @Override
        public String state() {
            return "up";
        }
    }

    @Test
    void noRequestStopsTheServerFromAnsweringTheNext() throws Exception {
        Failing f = new Failing();
        try (HttpFrontend h = HttpFrontend.start(f, HttpFrontend.Settings.of("127.0.0.1", 0).withToken("tok", null))) {
            Map<String, String> a = Map.of("Host", "127.0.0.1:" + h.port(), "Authorization", "Bearer tok");
            for (int i = 0; i < 3; i++) assertJsonError(RawHttp.send(h.port(), "GET", "/merges", a, null, false), 500);
            assertJsonError(RawHttp.send(h.port(), "GET", "/merges/x", a, null, false), 500);
            var boom = RawHttp.send(h.port(), "POST", "/merges?out=x", with(a, "Content-Type", "application/yaml"), CONFIG.getBytes(StandardCharsets.UTF_8), false);
            assertJsonError(boom, 500);
            assertTrue(boom.json().get("error").asText().contains("boom"), boom.body());
            var after = RawHttp.send(h.port(), "GET", "/merges", a, null, false);
            assertEquals(200, after.status(), after.body());
            assertEquals("[ ]", after.body().strip());
        }
    }
}
