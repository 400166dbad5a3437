package org.mergeengine.hub;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.InputStream;
import java.net.ConnectException;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import org.mergeengine.formats.Json;

/**
 * The hub's HTTP protocol: revision info, file metadata by HEAD on /resolve/ (X-Repo-Commit,
 * X-Linked-Etag, X-Linked-Size), ranged reads, and downloads that resume with Range, restart when
 * the server ignores it, check size and (for LFS files) sha256, and retry 429/5xx/timeouts with
 * backoff. The token is sent to the hub's own host only, never to a CDN it redirects to.
 */
public final class HubClient {
    public record RepoInfo(String commit, List<String> files) {}

    /** A file's identity at a commit: etag (git sha1, or sha256 for LFS files), size, and where its bytes are. */
    public record FileMeta(String repo, String file, String commit, String etag, long size, URI location) {
        public boolean lfs() {
            return etag.length() == 64;
        }
    }

    static final Set<Integer> RETRY = Set.of(408, 429, 500, 502, 503, 504);
    private final HubSettings s;
    private volatile HttpClient client;

    public HubClient(HubSettings s) {
        this.s = s;
    }

    /** Created on first use: building an HttpClient costs about half a second, which merges of local models should not pay. */
    private HttpClient http() {
        HttpClient c = client;
        if (c == null) {
            synchronized (this) {
                if (client == null) client = HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NEVER).connectTimeout(s.connectTimeout()).build();
                c = client;
            }
        }
        return c;
    }

    public HubSettings settings() { return s; }

    public RepoInfo repoInfo(String repo, String revision) {
        URI u = URI.create(s.endpoint() + "/api/models/" + repo + "/revision/" + encodeSegment(revision == null ? "main" : revision));
        HttpResponse<byte[]> r = send(request(u).GET().build(), HttpResponse.BodyHandlers.ofByteArray(), repo);
        if (r.statusCode() == 401 || r.statusCode() == 403) {
            throw new HubException("hub repository " + repo + " is private, gated or missing (HTTP " + r.statusCode() + "); set HF_TOKEN to a token with access");
        }
        if (r.statusCode() == 404) {
            throw new HubException("hub repository " + repo + (revision == null ? "" : " at revision " + revision) + " was not found (HTTP 404)");
        }
        if (r.statusCode() != 200) throw new HubException("hub answered HTTP " + r.statusCode() + " for " + u);
        JsonNode j;
        try {
            j = Json.MAPPER.readTree(r.body());
        } catch (IOException e) {
            throw new HubException("hub gave invalid JSON for " + u);
        }
        String sha = j.path("sha").asText(null);
        if (!RepoPaths.isCommit(sha)) throw new HubException("hub gave no commit for " + repo + "@" + revision);
        List<String> files = new ArrayList<>();
        for (JsonNode f : j.path("siblings")) files.add(RepoPaths.checkFile(repo, f.path("rfilename").asText()));
        return new RepoInfo(sha, files);
    }

    /** Metadata from HEAD on the file's /resolve/ URL (relative redirects followed, the CDN one not). Null when the file does not exist. */
    public FileMeta head(String repo, String commit, String file) {
        URI u = resolveUrl(repo, commit, file);
        for (int hop = 0; hop < 5; hop++) {
            HttpResponse<Void> r = send(request(u).method("HEAD", HttpRequest.BodyPublishers.noBody()).header("Accept-Encoding", "identity").build(),
                    HttpResponse.BodyHandlers.discarding(), repo);
            int st = r.statusCode();
            if (st == 404) return null;
            if (st == 401 || st == 403) throw new HubException(repo + "/" + file + ": access denied (HTTP " + st + "); set HF_TOKEN");
            String loc = r.headers().firstValue("Location").orElse(null);
            if (st >= 300 && st < 400 && loc != null && loc.startsWith("/")) { // a renamed repository: follow on the hub
                u = u.resolve(loc);
                continue;
            }
            if (st >= 400) throw new HubException(repo + "/" + file + ": HTTP " + st);
            String c = r.headers().firstValue("X-Repo-Commit").orElse(null);
            if (c == null) throw new HubException(u + " does not look like a Hugging Face hub (no X-Repo-Commit header)");
            String etag = r.headers().firstValue("X-Linked-Etag").or(() -> r.headers().firstValue("ETag")).orElse(null);
            etag = etag == null ? null : etag.replace("W/", "").replace("\"", "").trim();
            RepoPaths.checkEtag(repo, file, etag);
            boolean redirect = st >= 300 && st < 400;
            String size = r.headers().firstValue("X-Linked-Size")
                    .or(() -> redirect ? java.util.Optional.empty() : r.headers().firstValue("Content-Length")).orElse(null);
            if (size == null) throw new HubException(repo + "/" + file + ": the hub gave no size");
            URI location = loc != null ? u.resolve(loc) : u;
            return new FileMeta(repo, file, c, etag.toLowerCase(Locale.ROOT), Long.parseLong(size), location);
        }
        throw new HubException(repo + "/" + file + ": too many redirects");
    }

    /** Bytes [start, end] (inclusive) of a file, by a Range request. */
    public byte[] range(FileMeta m, long start, long end) {
        HttpResponse<byte[]> r = send(request(m.location()).GET().header("Range", "bytes=" + start + "-" + end)
                .header("Accept-Encoding", "identity").build(), HttpResponse.BodyHandlers.ofByteArray(), m.repo());
        if (r.statusCode() == 206) return r.body();
        if (r.statusCode() == 200) { // the server ignored Range: cut what we asked for
            byte[] all = r.body();
            if (all.length < end + 1) throw new HubException(m.repo() + "/" + m.file() + ": shorter than its header claims");
            return java.util.Arrays.copyOfRange(all, (int) start, (int) end + 1);
        }
        throw new HubException(m.repo() + "/" + m.file() + ": HTTP " + r.statusCode() + " for a ranged read");
    }

    /**
     * Downloads a file into {@code dest} (created or truncated), resuming after dropped connections.
     * Checks the size, and the sha256 of LFS files; a mismatch deletes the file and fails.
     */
    public void download(FileMeta m, Path dest) throws IOException {
        long written = 0;
        int failures = 0;
        try (FileChannel out = FileChannel.open(dest, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            while (written < m.size() || (m.size() == 0 && written == 0 && failures == 0)) {
                HttpRequest.Builder b = request(m.location()).GET().header("Accept-Encoding", "identity");
                if (written > 0) b.header("Range", "bytes=" + written + "-");
                HttpResponse<InputStream> r;
                try {
                    r = http().send(b.build(), HttpResponse.BodyHandlers.ofInputStream());
                } catch (IOException e) {
                    if (++failures > s.retries()) throw new HubException(m.repo() + "/" + m.file() + ": download failed after " + failures + " tries: " + e.getMessage(), e);
                    sleep(failures);
                    continue;
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted");
                }
                int st = r.statusCode();
                if (RETRY.contains(st)) {
                    r.body().close();
                    if (++failures > s.retries()) throw new HubException(m.repo() + "/" + m.file() + ": HTTP " + st + " after " + failures + " tries");
                    sleep(failures);
                    continue;
                }
                if (st == 200 && written > 0) { // Range ignored: start over rather than append a second copy
                    out.truncate(0);
                    written = 0;
                } else if (st == 206) {
                    String cr = r.headers().firstValue("Content-Range").orElse("");
                    if (!cr.startsWith("bytes " + written + "-")) {
                        r.body().close();
                        out.truncate(0);
                        written = 0;
                        continue;
                    }
                } else if (st != 200) {
                    r.body().close();
                    throw new HubException(m.repo() + "/" + m.file() + ": HTTP " + st + " from " + m.location().getHost());
                }
                try (InputStream in = r.body()) {
                    byte[] buf = new byte[1 << 20];
                    int n;
                    while ((n = in.read(buf)) > 0) {
                        ByteBuffer bb = ByteBuffer.wrap(buf, 0, n);
                        while (bb.hasRemaining()) written += out.write(bb, written);
                        failures = 0; // progress resets the count, as huggingface_hub does
                        if (written > m.size()) break;
                    }
                } catch (IOException e) {
                    if (++failures > s.retries()) throw new HubException(m.repo() + "/" + m.file() + ": connection kept dropping (" + e.getMessage() + ")", e);
                    sleep(failures);
                    continue;
                }
                if (m.size() == 0) break;
                if (written < m.size()) { // the body ended early: resume
                    if (++failures > s.retries()) break;
                    sleep(failures);
                }
            }
            out.force(true);
        }
        long size = Files.size(dest);
        if (size != m.size()) {
            Files.deleteIfExists(dest);
            throw new HubException(m.repo() + "/" + m.file() + ": downloaded " + size + " bytes, expected " + m.size() + " (consistency check failed)");
        }
        if (m.lfs()) {
            String got = sha256(dest);
            if (!got.equals(m.etag())) {
                Files.deleteIfExists(dest);
                throw new ChecksumException(m.repo() + "/" + m.file() + ": sha256 " + got + " does not match the hub's " + m.etag());
            }
        }
    }

    /** A download whose content did not match its checksum (worth one more try). */
    public static final class ChecksumException extends HubException {
        public ChecksumException(String message) {
            super(message);
        }
    }

    public static String sha256(Path f) throws IOException {
        return digest("SHA-256", null, f);
    }

    /** git's blob id: sha1 of "blob <size>\0" followed by the content (the etag of non-LFS files). */
    public static String gitSha1(Path f) throws IOException {
        return digest("SHA-1", ("blob " + Files.size(f) + "\0").getBytes(java.nio.charset.StandardCharsets.US_ASCII), f);
    }

    private static String digest(String algorithm, byte[] prefix, Path f) throws IOException {
        try {
            MessageDigest md = MessageDigest.getInstance(algorithm);
            if (prefix != null) md.update(prefix);
            try (InputStream in = Files.newInputStream(f)) {
                byte[] buf = new byte[1 << 20];
                int n;
                while ((n = in.read(buf)) > 0) md.update(buf, 0, n);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private HttpRequest.Builder request(URI u) {
        HttpRequest.Builder b = HttpRequest.newBuilder(u).timeout(s.timeout()).header("User-Agent", "merge-engine/0.1");
        // Pre-signed CDN URLs must not see the token; only the hub's own host does.
        if (s.token() != null && sameHost(u, s.endpoint())) b.header("Authorization", "Bearer " + s.token());
        return b;
    }

    static boolean sameHost(URI a, URI b) {
        return a.getHost() != null && a.getHost().equalsIgnoreCase(b.getHost()) && port(a) == port(b)
                && a.getScheme().equalsIgnoreCase(b.getScheme());
    }

    private static int port(URI u) {
        return u.getPort() >= 0 ? u.getPort() : u.getScheme().equalsIgnoreCase("https") ? 443 : 80;
    }

    private <T> HttpResponse<T> send(HttpRequest req, HttpResponse.BodyHandler<T> handler, String repo) {
        int failures = 0;
        while (true) {
            try {
                HttpResponse<T> r = http().send(req, handler);
                if (!RETRY.contains(r.statusCode()) || ++failures > s.retries()) return r;
            } catch (HttpTimeoutException e) {
                if (++failures > s.retries()) throw new HubException(repo + ": the hub did not answer in " + s.timeout().toSeconds() + "s (" + req.uri().getHost() + ")");
            } catch (IOException e) {
                // A refused connection or an unknown host does not heal in seconds: one retry, not the full backoff.
                if (++failures > (e instanceof ConnectException ? 1 : s.retries())) {
                    throw new HubException(repo + ": cannot reach " + req.uri().getHost() + " (" + (e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName())
                            + "); use --offline to work from the cache", e);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new HubException("interrupted");
            }
            sleep(failures);
        }
    }

    private void sleep(int failures) {
        long ms = Math.min(s.backoff().toMillis() * (1L << Math.min(failures - 1, 3)), 8 * s.backoff().toMillis());
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    URI resolveUrl(String repo, String commit, String file) {
        StringBuilder p = new StringBuilder();
        for (String seg : file.split("/")) p.append('/').append(encodeSegment(seg));
        return URI.create(s.endpoint() + "/" + repo + "/resolve/" + commit + p);
    }

    static String encodeSegment(String seg) {
        try {
            return new URI(null, null, seg, null).getRawPath().replace("/", "%2F").replace("@", "%40");
        } catch (URISyntaxException e) {
            throw new HubException("cannot encode '" + seg + "' in a URL");
        }
    }
}
