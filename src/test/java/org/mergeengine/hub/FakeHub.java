package org.mergeengine.hub;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

/**
 * A Hugging Face hub on 127.0.0.1 for tests: the revision API, /resolve/ with X-Repo-Commit,
 * X-Linked-Etag and X-Linked-Size, LFS files redirected to a second server (the "CDN") that
 * honours Range. It counts every request and can drop a connection, ignore Range, or corrupt a
 * body once; and it can behave like a hostile mirror: bodies that never end or trickle, redirects
 * anywhere, sizes that are not numbers, short ranges, huge JSON.
 */
final class FakeHub implements AutoCloseable {
    record Repo(String commit, Map<String, byte[]> files) {}

    final HttpServer hub, cdn;
    final Map<String, Repo> repos = new ConcurrentHashMap<>();
    final Map<String, byte[]> blobs = new ConcurrentHashMap<>();
    final Map<String, AtomicInteger> counts = new ConcurrentHashMap<>();
    final List<String> cdnAuthorization = new CopyOnWriteArrayList<>();
    final List<String> hubAuthorization = new CopyOnWriteArrayList<>();
    final Map<String, Long> dropAfter = new ConcurrentHashMap<>();
    final Map<String, Boolean> corruptOnce = new ConcurrentHashMap<>();
    volatile boolean ignoreRange;
    /** Milliseconds a whole-file download waits before its body (to make downloads overlap). */
    volatile long slowFullDownloads;
    /** The CDN ignores Range and sends the file, then zeros for as long as the client reads. */
    volatile boolean endlessIgnoringRange;
    /** Downloads (whole files and resumed ones) send one byte per this many milliseconds (0: at once). */
    volatile long trickleMillis;
    /** The Location the hub gives for LFS files instead of its CDN (null: the CDN). */
    volatile String redirectTo;
    /** The X-Linked-Size the hub gives instead of the real one (null: the real one). */
    volatile String linkedSize;
    /** Ranged reads answer 206 with half the bytes asked for. */
    volatile boolean shortRanges;
    /** Spaces added to every revision JSON. */
    volatile int jsonPadding;

    FakeHub() throws IOException {
        InetAddress lo = InetAddress.getLoopbackAddress();
        hub = HttpServer.create(new InetSocketAddress(lo, 0), 0);
        cdn = HttpServer.create(new InetSocketAddress(lo, 0), 0);
        hub.setExecutor(Executors.newFixedThreadPool(8));
        cdn.setExecutor(Executors.newFixedThreadPool(8));
        hub.createContext("/", this::hub);
        cdn.createContext("/", this::cdn);
        hub.start();
        cdn.start();
    }

    String url() {
        return "http://127.0.0.1:" + hub.getAddress().getPort();
    }

    /** Publishes every file of a folder as repository {@code repo}. */
    String add(String repo, Path folder) throws Exception {
        Map<String, byte[]> files = new TreeMap<>();
        try (Stream<Path> s = Files.walk(folder)) {
            for (Path p : (Iterable<Path>) s::iterator) {
                if (Files.isRegularFile(p)) files.put(folder.relativize(p).toString().replace('\\', '/'), Files.readAllBytes(p));
            }
        }
        MessageDigest md = MessageDigest.getInstance("SHA-1");
        md.update(repo.getBytes(StandardCharsets.UTF_8));
        for (Map.Entry<String, byte[]> e : files.entrySet()) {
            md.update(e.getKey().getBytes(StandardCharsets.UTF_8));
            md.update(e.getValue());
            if (lfs(e.getKey())) blobs.put(sha256(e.getValue()), e.getValue());
        }
        String commit = HexFormat.of().formatHex(md.digest());
        repos.put(repo, new Repo(commit, files));
        return commit;
    }

    static boolean lfs(String file) {
        return file.endsWith(".safetensors");
    }

    static String sha256(byte[] b) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
    }

    static String gitSha1(byte[] b) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-1");
        md.update(("blob " + b.length + "\0").getBytes(StandardCharsets.US_ASCII));
        md.update(b);
        return HexFormat.of().formatHex(md.digest());
    }

    int count(String key) {
        AtomicInteger a = counts.get(key);
        return a == null ? 0 : a.get();
    }

    int total() {
        int n = 0;
        for (AtomicInteger a : counts.values()) n += a.get();
        return n;
    }

    /** Full-body downloads of a file's content (CDN for LFS files, the hub for the others). */
    int downloads(String repo, String file) throws Exception {
        byte[] b = repos.get(repo).files().get(file);
        return lfs(file) ? count("CDN " + sha256(b) + " full") + count("CDN " + sha256(b) + " resume") : count("GET " + repo + "/" + file);
    }

    private void bump(String key) {
        counts.computeIfAbsent(key, k -> new AtomicInteger()).incrementAndGet();
    }

    private void hub(HttpExchange ex) throws IOException {
        try (ex) {
            String auth = ex.getRequestHeaders().getFirst("Authorization");
            if (auth != null) hubAuthorization.add(auth);
            String path = ex.getRequestURI().getPath();
            String[] p = path.substring(1).split("/");
            if (p.length >= 6 && p[0].equals("api") && p[1].equals("models") && p[4].equals("revision")) {
                String repo = p[2] + "/" + p[3];
                bump("API " + repo);
                Repo r = repos.get(repo);
                if (r == null) {
                    send(ex, 404, "{\"error\":\"Repository not found\"}".getBytes(StandardCharsets.UTF_8));
                    return;
                }
                StringBuilder sb = new StringBuilder("{\"id\":\"" + repo + "\",\"sha\":\"" + r.commit() + "\",\"siblings\":[");
                int i = 0;
                for (String f : r.files().keySet()) sb.append(i++ == 0 ? "" : ",").append("{\"rfilename\":\"").append(f).append("\"}");
                sb.append("]").append(" ".repeat(jsonPadding)).append("}");
                send(ex, 200, sb.toString().getBytes(StandardCharsets.UTF_8));
                return;
            }
            if (p.length >= 5 && p[2].equals("resolve")) {
                String repo = p[0] + "/" + p[1];
                String file = String.join("/", java.util.Arrays.copyOfRange(p, 4, p.length));
                bump(ex.getRequestMethod() + " " + repo + "/" + file);
                Repo r = repos.get(repo);
                byte[] body = r == null ? null : r.files().get(file);
                if (body == null) {
                    ex.getResponseHeaders().add("X-Error-Code", "EntryNotFound");
                    if (r != null) ex.getResponseHeaders().add("X-Repo-Commit", r.commit());
                    send(ex, 404, new byte[0]);
                    return;
                }
                ex.getResponseHeaders().add("X-Repo-Commit", r.commit());
                if (lfs(file)) {
                    String sha = sha256(body);
                    ex.getResponseHeaders().add("X-Linked-Etag", "\"" + sha + "\"");
                    ex.getResponseHeaders().add("X-Linked-Size", linkedSize != null ? linkedSize : Long.toString(body.length));
                    ex.getResponseHeaders().add("ETag", "\"" + gitSha1(("pointer " + sha).getBytes(StandardCharsets.UTF_8)) + "\"");
                    ex.getResponseHeaders().add("Location", redirectTo != null ? redirectTo
                            : "http://127.0.0.1:" + cdn.getAddress().getPort() + "/blobs/" + sha + "?signature=x");
                    ex.sendResponseHeaders(302, -1);
                    return;
                }
                ex.getResponseHeaders().add("ETag", "\"" + gitSha1(body) + "\"");
                if (ex.getRequestMethod().equals("HEAD")) {
                    ex.getResponseHeaders().add("X-Linked-Size", Long.toString(body.length));
                    ex.sendResponseHeaders(200, -1);
                    return;
                }
                send(ex, 200, body);
                return;
            }
            send(ex, 404, new byte[0]);
        } catch (Exception e) {
            throw new IOException(e);
        }
    }

    private void cdn(HttpExchange ex) throws IOException {
        try (ex) {
            String auth = ex.getRequestHeaders().getFirst("Authorization");
            if (auth != null) cdnAuthorization.add(auth);
            String sha = ex.getRequestURI().getPath().replace("/blobs/", "");
            byte[] body = blobs.get(sha);
            if (body == null) {
                send(ex, 404, new byte[0]);
                return;
            }
            String range = ex.getRequestHeaders().getFirst("Range");
            if (endlessIgnoringRange) {
                endless(ex, sha, body);
                return;
            }
            long start = 0, end = body.length - 1;
            if (range != null && !ignoreRange) {
                String[] r = range.replace("bytes=", "").split("-", -1);
                start = Long.parseLong(r[0]);
                if (!r[1].isEmpty()) end = Long.parseLong(r[1]);
                bump("CDN " + sha + (end == body.length - 1 ? (start == 0 ? " full" : " resume") : " range " + start + "-" + end));
            } else {
                bump("CDN " + sha + " full");
            }
            byte[] out = java.util.Arrays.copyOfRange(body, (int) start, (int) end + 1);
            boolean wholeBody = end == body.length - 1;
            if (wholeBody && start == 0 && slowFullDownloads > 0) {
                try {
                    Thread.sleep(slowFullDownloads);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            if (wholeBody && start == 0 && corruptOnce.remove(sha) != null) {
                out = out.clone();
                out[out.length / 2] ^= 0x55;
            }
            if (range != null && !ignoreRange) {
                ex.getResponseHeaders().add("Content-Range", "bytes " + start + "-" + end + "/" + body.length);
                if (shortRanges) out = Arrays.copyOf(out, out.length / 2);
                ex.sendResponseHeaders(206, out.length);
            } else {
                ex.sendResponseHeaders(200, out.length);
            }
            Long drop = wholeBody && dropAfter.getOrDefault(sha, Long.MAX_VALUE) < out.length ? dropAfter.remove(sha) : null;
            OutputStream os = ex.getResponseBody();
            if (wholeBody && trickleMillis > 0) { // resumed downloads too
                for (byte b : out) {
                    os.write(b);
                    os.flush();
                    try {
                        Thread.sleep(trickleMillis);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        return;
                    }
                }
                return;
            }
            if (drop != null) {
                os.write(out, 0, drop.intValue());
                os.flush();
                ex.getHttpContext().getServer(); // the exchange is abandoned: the client sees the body end early
                throw new IOException("connection dropped on purpose");
            }
            os.write(out);
        }
    }

    /** Bytes the endless CDN has sent, all requests together. */
    final AtomicLong endlessSent = new AtomicLong();

    private void endless(HttpExchange ex, String sha, byte[] body) throws IOException {
        bump("CDN " + sha + " endless");
        ex.sendResponseHeaders(200, 0); // no length: chunked, ends when the client hangs up
        OutputStream os = ex.getResponseBody();
        os.write(body);
        endlessSent.addAndGet(body.length);
        byte[] zeros = new byte[1 << 16];
        while (!Thread.currentThread().isInterrupted()) {
            os.write(zeros); // throws once the client has gone
            endlessSent.addAndGet(zeros.length);
        }
    }

    private static void send(HttpExchange ex, int code, byte[] body) throws IOException {
        ex.sendResponseHeaders(code, body.length == 0 ? -1 : body.length);
        if (body.length > 0) ex.getResponseBody().write(body);
    }

    List<String> keys() {
        return new ArrayList<>(new TreeMap<>(counts).keySet());
    }

    @Override
    public void close() {
        hub.stop(0);
        cdn.stop(0);
    }
}
