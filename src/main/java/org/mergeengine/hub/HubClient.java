package org.mergeengine.hub;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.ConnectException;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.http.HttpClient;
import java.net.http.HttpHeaders;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Flow;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;
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
    /** The most a revision's JSON may take (a repository of thousands of files needs a few MB). */
    static final long MAX_JSON = 32L << 20;
    /** Bytes a broken-off body must have brought for its failure not to count against the retries. */
    static final long PROGRESS = 1 << 20;
    /** The most of an error page or a HEAD reply that is read. */
    static final long SMALL_BODY = 64 << 10;
    private final HubSettings s;
    private final long maxJson;
    private volatile HttpClient client;

    public HubClient(HubSettings s) {
        this(s, MAX_JSON);
    }

    HubClient(HubSettings s, long maxJson) {
        this.s = s;
        this.maxJson = maxJson;
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
        Reply<byte[]> r = send(request(u).GET().build(), info -> info.statusCode() == 200 ? new Collect(maxJson, u) : new Collect(SMALL_BODY, null), repo);
        if (r.status() == 401 || r.status() == 403) {
            throw new HubException("hub repository " + repo + " is private, gated or missing (HTTP " + r.status() + "); set HF_TOKEN to a token with access");
        }
        if (r.status() == 404) {
            throw new HubException("hub repository " + repo + (revision == null ? "" : " at revision " + revision) + " was not found (HTTP 404)");
        }
        if (r.status() != 200) throw new HubException("hub answered HTTP " + r.status() + " for " + Urls.show(u));
        JsonNode j;
        try {
            j = Json.MAPPER.readTree(r.body());
        } catch (IOException e) {
            throw new HubException("hub gave invalid JSON for " + Urls.show(u));
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
        String what = repo + "/" + file;
        for (int hop = 0; hop < 5; hop++) {
            Reply<byte[]> r = send(request(u).method("HEAD", HttpRequest.BodyPublishers.noBody()).header("Accept-Encoding", "identity").build(),
                    info -> new Collect(SMALL_BODY, null), repo);
            int st = r.status();
            if (st == 404) return null;
            if (st == 401 || st == 403) throw new HubException(what + ": access denied (HTTP " + st + "); set HF_TOKEN");
            String loc = r.headers().firstValue("Location").map(String::strip).orElse(null);
            if (st >= 300 && st < 400 && loc != null && loc.startsWith("/") && !loc.startsWith("//")) { // a renamed repository: follow on the hub
                u = target(u, loc, what);
                continue;
            }
            if (st >= 400) throw new HubException(what + ": HTTP " + st);
            String c = r.headers().firstValue("X-Repo-Commit").orElse(null);
            if (c == null) throw new HubException(Urls.show(u) + " does not look like a Hugging Face hub (no X-Repo-Commit header)");
            String etag = r.headers().firstValue("X-Linked-Etag").or(() -> r.headers().firstValue("ETag")).orElse(null);
            etag = etag == null ? null : etag.replace("W/", "").replace("\"", "").trim();
            RepoPaths.checkEtag(repo, file, etag);
            boolean redirect = st >= 300 && st < 400;
            String size = r.headers().firstValue("X-Linked-Size")
                    .or(() -> redirect ? java.util.Optional.empty() : r.headers().firstValue("Content-Length")).orElse(null);
            if (size == null) throw new HubException(what + ": the hub gave no size");
            long n;
            try {
                n = Long.parseLong(size.strip());
            } catch (NumberFormatException e) {
                throw new HubException(what + ": the hub gave the size '" + shorten(size) + "', which is not a number");
            }
            if (n < 0) throw new HubException(what + ": the hub gave a negative size (" + n + ")");
            URI location = loc != null ? target(u, loc, what) : u;
            return new FileMeta(repo, file, c, etag.toLowerCase(Locale.ROOT), n, location);
        }
        throw new HubException(what + ": too many redirects");
    }

    /** Where a redirect leads: an http or https URL, or a failure that says what the server sent. */
    static URI target(URI from, String location, String what) {
        URI to;
        try {
            to = from.resolve(new URI(location));
        } catch (URISyntaxException | IllegalArgumentException e) {
            throw new HubException(what + ": the hub redirected to a malformed URL '" + shorten(location) + "'");
        }
        String scheme = to.getScheme() == null ? "" : to.getScheme().toLowerCase(Locale.ROOT);
        if (!(scheme.equals("http") || scheme.equals("https")) || to.getHost() == null) {
            throw new HubException(what + ": the hub redirected to '" + shorten(Urls.redact(location)) + "'; only http and https URLs with a host are followed");
        }
        return to;
    }

    private static String shorten(String s) {
        return s.length() > 200 ? s.substring(0, 200) + "..." : s;
    }

    /** Bytes [start, end] (inclusive) of a file, by a Range request; never more than that is read, whatever the server sends. */
    public byte[] range(FileMeta m, long start, long end) {
        String what = m.repo() + "/" + m.file();
        long want = end - start + 1;
        if (start < 0 || want <= 0 || want > Integer.MAX_VALUE - 8) throw new HubException(what + ": cannot read bytes " + start + "-" + end);
        Reply<byte[]> r = send(request(m.location()).GET().header("Range", "bytes=" + start + "-" + end).header("Accept-Encoding", "identity").build(),
                info -> info.statusCode() == 206 ? new Collect(want, m.location())
                        : info.statusCode() == 200 ? new Collect(end + 1, null).stopAtLimit() : new Collect(SMALL_BODY, null), m.repo());
        if (r.status() == 206) {
            String cr = r.headers().firstValue("Content-Range").orElse("");
            if (!cr.strip().startsWith("bytes " + start + "-" + end + "/")) {
                throw new HubException(what + ": asked for bytes " + start + "-" + end + ", the server sent '" + shorten(cr) + "'");
            }
            if (r.body().length != want) {
                throw new HubException(what + ": asked for " + want + " bytes, the server sent " + r.body().length + " (a short ranged read)");
            }
            return r.body();
        }
        if (r.status() == 200) { // the server ignored Range: only the first end+1 bytes were read, then the connection was dropped
            byte[] head = r.body();
            if (head.length < end + 1) throw new HubException(what + ": shorter than its header claims");
            return Arrays.copyOfRange(head, (int) start, (int) end + 1);
        }
        throw new HubException(what + ": HTTP " + r.status() + " for a ranged read");
    }

    /**
     * Downloads a file into {@code dest} (created or truncated), resuming after dropped connections.
     * Checks the size, and the sha256 of LFS files; a mismatch deletes the file and fails.
     */
    public void download(FileMeta m, Path dest) throws IOException {
        String what = m.repo() + "/" + m.file();
        int failures = 0;
        try (FileChannel out = FileChannel.open(dest, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            long[] written = {0};
            boolean first = true;
            while (written[0] < m.size() || (m.size() == 0 && first)) {
                first = false;
                HttpRequest.Builder b = request(m.location()).GET().header("Accept-Encoding", "identity");
                long from = written[0];
                if (from > 0) b.header("Range", "bytes=" + from + "-");
                long before = from;
                Reply<Long> r;
                try {
                    r = exchange(b.build(), info -> {
                        int st = info.statusCode();
                        String cr = info.headers().firstValue("Content-Range").orElse("");
                        boolean ok = st == 200 || st == 206 && cr.startsWith("bytes " + from + "-");
                        if (!ok) return new Discard();
                        if (st == 200 && from > 0) { // Range ignored: start over rather than append a second copy
                            written[0] = 0;
                        }
                        return new ToFile(out, written, m.size(), what);
                    });
                } catch (HubException e) {
                    throw e;
                } catch (IOException e) {
                    // Real progress resets the count, as huggingface_hub does; a byte or two before a stall is not progress.
                    if (written[0] - before >= PROGRESS) failures = 0;
                    if (++failures > s.retries()) {
                        throw new HubException(what + ": download failed after " + failures + " tries: " + Urls.redact(e.getMessage()), e);
                    }
                    sleep(failures);
                    continue;
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted");
                }
                int st = r.status();
                if (RETRY.contains(st)) {
                    if (++failures > s.retries()) throw new HubException(what + ": HTTP " + st + " after " + failures + " tries");
                    sleep(failures);
                    continue;
                }
                if (st == 206 && r.body() == null) { // a Content-Range other than the one asked for: start again from 0
                    out.truncate(0);
                    written[0] = 0;
                    if (++failures > s.retries()) throw new HubException(what + ": the server kept answering ranges other than the ones asked for");
                    continue;
                }
                if (st != 200 && st != 206) throw new HubException(what + ": HTTP " + st + " from " + m.location().getHost());
                if (written[0] - before >= PROGRESS || written[0] == m.size()) failures = 0;
                if (m.size() == 0) break;
                if (written[0] < m.size()) { // the body ended early: resume
                    if (++failures > s.retries()) break;
                    sleep(failures);
                }
            }
            out.truncate(written[0]);
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

    /** A body that is not wanted (an error page): dropped unread. */
    private static final class Discard implements Sink<Long> {
        @Override
        public boolean accept(ByteBuffer b) {
            return false;
        }

        @Override
        public Long result() {
            return null;
        }
    }

    /** A download's bytes, written at their offset; a body longer than the file's size is refused. */
    private static final class ToFile implements Sink<Long> {
        private final FileChannel out;
        private final long[] written;
        private final long size;
        private final String what;

        ToFile(FileChannel out, long[] written, long size, String what) {
            this.out = out;
            this.written = written;
            this.size = size;
            this.what = what;
        }

        @Override
        public boolean accept(ByteBuffer b) throws IOException {
            if (written[0] + b.remaining() > size) throw new HubException(what + ": the server sent more than the file's " + size + " bytes");
            while (b.hasRemaining()) written[0] += out.write(b, written[0]);
            return true;
        }

        @Override
        public Long result() {
            return written[0];
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

    /** A response whose body was read through a {@link Sink}. */
    record Reply<T>(int status, HttpHeaders headers, T body) {}

    /** Takes a body's bytes as they arrive; answers false once it needs no more (the rest is not read). */
    interface Sink<T> {
        boolean accept(ByteBuffer b) throws IOException;

        T result();
    }

    /** A body kept in memory, at most {@code max} bytes; beyond that, a failure (or, with stopAtLimit, the end of reading). */
    static final class Collect implements Sink<byte[]> {
        private final long max;
        private final URI source;
        private boolean stop;
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        /** @param source named in the failure when the body is too large (null: the excess is dropped silently, for error bodies) */
        Collect(long max, URI source) {
            this.max = max;
            this.source = source;
        }

        Collect stopAtLimit() {
            stop = true;
            return this;
        }

        @Override
        public boolean accept(ByteBuffer b) {
            long room = max - out.size();
            int n = b.remaining();
            if (n > room) {
                if (source != null && !stop) throw new HubException(Urls.show(source) + ": the server sent more than the " + max + " bytes expected");
                byte[] part = new byte[(int) room];
                b.get(part);
                out.writeBytes(part);
                return false;
            }
            byte[] all = new byte[n];
            b.get(all);
            out.writeBytes(all);
            return out.size() < max || source != null && !stop;
        }

        @Override
        public byte[] result() {
            return out.toByteArray();
        }
    }

    /**
     * Feeds a body to a sink and notes when the last bytes came, so the caller can give up on a
     * server that sends headers and then nothing (or a byte now and then). The HTTP client's own
     * timeout covers only the wait for the headers.
     */
    private static final class Reader<T> implements HttpResponse.BodySubscriber<T> {
        private final Sink<T> sink;
        private final CompletableFuture<T> body = new CompletableFuture<>();
        private volatile Flow.Subscription subscription;
        volatile long lastData = System.nanoTime();

        Reader(Sink<T> sink) {
            this.sink = sink;
        }

        @Override
        public void onSubscribe(Flow.Subscription s) {
            subscription = s;
            s.request(1);
        }

        @Override
        public void onNext(List<ByteBuffer> items) {
            lastData = System.nanoTime();
            if (body.isDone()) return;
            try {
                for (ByteBuffer b : items) {
                    if (!sink.accept(b)) {
                        body.complete(sink.result());
                        subscription.cancel();
                        return;
                    }
                }
                subscription.request(1);
            } catch (Throwable t) {
                body.completeExceptionally(t);
                subscription.cancel();
            }
        }

        @Override
        public void onError(Throwable t) {
            body.completeExceptionally(t);
        }

        @Override
        public void onComplete() {
            body.complete(sink.result());
        }

        @Override
        public CompletionStage<T> getBody() {
            return body;
        }

        void cancel() {
            Flow.Subscription s = subscription;
            if (s != null) s.cancel();
            body.completeExceptionally(new IOException("cancelled"));
        }
    }

    /** A body that stopped arriving: no bytes for the idle timeout. */
    static final class Stalled extends IOException {
        Stalled(String message) {
            super(message);
        }
    }

    /** One exchange: the response, its body read through the sink; gives up when no bytes came for the idle timeout. */
    <T> Reply<T> exchange(HttpRequest req, Function<HttpResponse.ResponseInfo, Sink<T>> sinks) throws IOException, InterruptedException {
        AtomicReference<Reader<T>> reader = new AtomicReference<>();
        CompletableFuture<HttpResponse<T>> f = http().sendAsync(req, info -> {
            Reader<T> r = new Reader<>(sinks.apply(info));
            reader.set(r);
            return r;
        });
        long idle = s.timeout().toNanos();
        long started = System.nanoTime();
        long poll = Math.max(10, Math.min(1000, s.timeout().toMillis() / 4));
        while (true) {
            try {
                HttpResponse<T> r = f.get(poll, TimeUnit.MILLISECONDS);
                return new Reply<>(r.statusCode(), r.headers(), r.body());
            } catch (TimeoutException e) {
                Reader<T> r = reader.get();
                // Before the headers the request's own timeout applies; this is the backstop.
                long since = System.nanoTime() - (r == null ? started : r.lastData);
                if (since > (r == null ? 2 * idle : idle)) {
                    if (r != null) r.cancel();
                    f.cancel(true);
                    throw new Stalled(Urls.show(req.uri()) + " sent nothing for " + seconds(s.timeout()));
                }
            } catch (ExecutionException e) {
                Throwable c = e.getCause();
                while ((c instanceof CompletionException || c instanceof ExecutionException) && c.getCause() != null) c = c.getCause();
                if (c instanceof HubException h) throw h;
                if (c instanceof IOException io) throw io;
                if (c instanceof IllegalArgumentException iae) throw new HubException(Urls.show(req.uri()) + ": " + iae.getMessage());
                throw new IOException(String.valueOf(c.getMessage()), c);
            }
        }
    }

    private <T> Reply<T> send(HttpRequest req, Function<HttpResponse.ResponseInfo, Sink<T>> sinks, String repo) {
        int failures = 0;
        while (true) {
            try {
                Reply<T> r = exchange(req, sinks);
                if (!RETRY.contains(r.status()) || ++failures > s.retries()) return r;
            } catch (HttpTimeoutException e) {
                if (++failures > s.retries()) throw new HubException(repo + ": the hub did not answer in " + seconds(s.timeout()) + " (" + req.uri().getHost() + ")");
            } catch (Stalled e) {
                if (++failures > s.retries()) throw new HubException(repo + ": " + e.getMessage() + ", " + failures + " times; giving up");
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

    static String seconds(Duration d) {
        return d.toMillis() % 1000 == 0 ? d.toSeconds() + " s" : d.toMillis() / 1000.0 + " s";
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
