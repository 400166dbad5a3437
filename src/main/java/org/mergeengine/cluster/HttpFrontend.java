package org.mergeengine.cluster;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.mergeengine.MergeException;
import org.mergeengine.engine.Progress;
import org.mergeengine.engine.Threads;
import org.mergeengine.formats.Json;
import org.mergeengine.hub.Urls;
import org.mergeengine.plan.PlanOptions;

/**
 * A node's HTTP interface: {@code POST /merges?out=DIR[&dir=DIR][&out_shard_size=BYTES][&random_seed=N][&allow_crimes=true]}
 * with a YAML body queues a merge and answers its id; {@code GET /merges/ID} gives its state and
 * progress as JSON; {@code GET /merges} lists them; {@code GET /cluster} lists the members and says
 * whether this node is still one.
 *
 * <p>It takes file paths and starts work, so any web page the user visits is an attacker: every
 * request needs {@code Authorization: Bearer TOKEN}; a {@code Host} that is not this server's
 * address is refused (DNS rebinding), and so is any {@code Origin} not allowed explicitly; a POST
 * must say it is YAML or JSON (a form or {@code text/plain} is what a page can send without
 * asking); bodies are capped. Every failure is answered with a status and a JSON body, and nothing
 * a request does (an {@link OutOfMemoryError} included) stops the server from answering the next.
 */
public final class HttpFrontend implements AutoCloseable {
    /** What the interface needs from a node (a seam so tests can make a request fail in any way). */
    interface Backend {
        Submission submit(MergeNode.Request r);
        Optional<Submission> submission(String id);
        List<Submission> submissions();
        String address();
        List<String> members();
        /** "up" while the node is a cluster member; otherwise why it is not. */
        String state();
    }

    public static final long DEFAULT_MAX_BODY = 1 << 20;
    static final Set<String> BODY_TYPES = Set.of("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "application/json");

    /**
     * How the interface is served.
     * @param token the bearer token; null: a random one is made
     * @param tokenFile where the token is written, readable by this user only (null: nowhere); {@code {port}} in it is the bound port
     * @param allowedHosts host names a request's Host header may name besides the bound address
     * @param allowedOrigins Origin headers accepted (e.g. {@code https://ops.example.com}); none by default
     * @param maxBodyBytes larger bodies are answered 413
     */
    public record Settings(String host, int port, String token, Path tokenFile, List<String> allowedHosts, List<String> allowedOrigins,
                           long maxBodyBytes) {
        public static Settings of(String host, int port) {
            return new Settings(host, port, null, null, List.of(), List.of(), DEFAULT_MAX_BODY);
        }

        public Settings withToken(String t, Path file) {
            return new Settings(host, port, t, file, allowedHosts, allowedOrigins, maxBodyBytes);
        }

        public Settings withAllowed(List<String> hosts, List<String> origins) {
            return new Settings(host, port, token, tokenFile, hosts, origins, maxBodyBytes);
        }
    }

    private final HttpServer server;
    private final Backend node;
    private final String token;
    private final Set<String> hosts;
    private final Set<String> origins;
    private final long maxBody;

    private HttpFrontend(HttpServer server, Backend node, String token, Set<String> hosts, Set<String> origins, long maxBody) {
        this.server = server;
        this.node = node;
        this.token = token;
        this.hosts = hosts;
        this.origins = origins;
        this.maxBody = maxBody;
    }

    /** Serves on host:port with a new random token (see {@link #token()}) and no token file. */
    public static HttpFrontend start(MergeNode node, String host, int port) {
        return start(node, Settings.of(host, port));
    }

    public static HttpFrontend start(MergeNode node, Settings s) {
        return start((Backend) node, s);
    }

    static HttpFrontend start(Backend node, Settings s) {
        String token = s.token() != null && !s.token().isBlank() ? s.token().strip() : newToken();
        HttpServer server;
        try {
            server = HttpServer.create(new InetSocketAddress(s.host(), s.port()), 0);
        } catch (IOException | RuntimeException e) {
            throw MergeException.user("cannot serve HTTP on " + s.host() + ":" + s.port() + ": " + e.getMessage());
        }
        Set<String> origins = new HashSet<>();
        for (String o : s.allowedOrigins()) origins.add(o.strip().toLowerCase(Locale.ROOT));
        HttpFrontend f = new HttpFrontend(server, node, token, hostNames(s.host(), s.allowedHosts()), origins, s.maxBodyBytes());
        if (s.tokenFile() != null) {
            f.tokenFile = Path.of(s.tokenFile().toString().replace("{port}", Integer.toString(f.port())));
            try {
                writeToken(f.tokenFile, token);
            } catch (RuntimeException e) {
                server.stop(0);
                throw e;
            }
        }
        server.createContext("/", f::handle);
        server.setExecutor(Threads.daemonPool("merge-http"));
        server.start();
        return f;
    }

    public int port() {
        return server.getAddress().getPort();
    }

    private Path tokenFile;

    /** Where the token was written (null: nowhere). */
    public Path tokenFile() {
        return tokenFile;
    }

    /** The bearer token every request must carry. */
    public String token() {
        return token;
    }

    static String newToken() {
        byte[] b = new byte[32];
        new SecureRandom().nextBytes(b);
        return Base64.getUrlEncoder().withoutPadding().encodeToString(b);
    }

    /** Writes the token to a file only this user can read (created so, never widened afterwards). */
    static void writeToken(Path file, String token) {
        Path f = file.toAbsolutePath();
        try {
            Files.createDirectories(f.getParent());
            Path tmp;
            try {
                tmp = Files.createTempFile(f.getParent(), ".token", ".tmp", PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            } catch (UnsupportedOperationException e) {
                tmp = Files.createTempFile(f.getParent(), ".token", ".tmp"); // not a POSIX file system: its own ACLs apply
            }
            Files.writeString(tmp, token + "\n");
            Files.move(tmp, f, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw MergeException.user("cannot write the HTTP token to " + f + ": " + e.getMessage());
        }
    }

    /** The names a Host header may give: the bound address, the loopback names when bound there, this machine's addresses when bound to all. */
    static Set<String> hostNames(String bind, List<String> extra) {
        Set<String> h = new HashSet<>();
        h.add(bracket(bind));
        for (String e : extra) h.add(bracket(e.strip()));
        try {
            InetAddress a = InetAddress.getByName(bind);
            h.add(bracket(a.getHostAddress()));
            if (a.isLoopbackAddress()) {
                h.addAll(List.of("localhost", "127.0.0.1", "[::1]"));
            } else if (a.isAnyLocalAddress()) {
                for (NetworkInterface ni : Collections.list(NetworkInterface.getNetworkInterfaces())) {
                    for (InetAddress x : Collections.list(ni.getInetAddresses())) h.add(bracket(x.getHostAddress().replaceAll("%.*$", "")));
                }
                h.add(InetAddress.getLocalHost().getHostName().toLowerCase(Locale.ROOT));
                h.add(InetAddress.getLocalHost().getCanonicalHostName().toLowerCase(Locale.ROOT));
            }
        } catch (IOException e) {
            // an unresolvable bind address fails at bind time with its own message
        }
        return Set.copyOf(h);
    }

    private static String bracket(String host) {
        String l = host.toLowerCase(Locale.ROOT);
        return l.indexOf(':') >= 0 && !l.startsWith("[") ? "[" + l + "]" : l;
    }

    /** A refusal or failure answered with its status and a JSON body. */
    private static final class Answer extends RuntimeException {
        final int code;

        Answer(int code, String message) {
            super(message, null, false, false);
            this.code = code;
        }
    }

    private static final byte[] OUT_OF_MEMORY = "{\"error\": \"the node ran out of memory answering this request\"}".getBytes(StandardCharsets.UTF_8);

    private void handle(HttpExchange ex) {
        try {
            checkCaller(ex);
            route(ex);
        } catch (Answer a) {
            send(ex, a.code, error(a.getMessage()));
        } catch (OutOfMemoryError e) {
            // The memory is free again once this request's objects are gone; answer with bytes made in advance.
            sendRaw(ex, 500, OUT_OF_MEMORY);
        } catch (Throwable t) {
            try {
                send(ex, 500, error("internal error: " + Urls.redact(String.valueOf(t))));
            } catch (Throwable again) {
                sendRaw(ex, 500, OUT_OF_MEMORY);
            }
        } finally {
            try {
                ex.close();
            } catch (Throwable ignored) {
                // the client went away
            }
        }
    }

    private void checkCaller(HttpExchange ex) {
        String host = ex.getRequestHeaders().getFirst("Host");
        if (host == null || !hostAllowed(host)) {
            throw new Answer(403, "Host '" + host + "' is not this server's address; allow it with --http-allowed-hosts if it is a name of this machine");
        }
        String origin = ex.getRequestHeaders().getFirst("Origin");
        if (origin != null && !origins.contains(origin.strip().toLowerCase(Locale.ROOT))) {
            throw new Answer(403, "requests from web pages (Origin " + origin + ") are refused; allow an origin with --http-allowed-origins");
        }
        String auth = ex.getRequestHeaders().getFirst("Authorization");
        String given = auth != null && auth.regionMatches(true, 0, "Bearer ", 0, 7) ? auth.substring(7).strip() : null;
        if (given == null || !MessageDigest.isEqual(given.getBytes(StandardCharsets.UTF_8), token.getBytes(StandardCharsets.UTF_8))) {
            ex.getResponseHeaders().set("WWW-Authenticate", "Bearer");
            throw new Answer(401, "send the node's token: Authorization: Bearer TOKEN (the node wrote it to its token file at start)");
        }
    }

    private boolean hostAllowed(String header) {
        String h = header.strip().toLowerCase(Locale.ROOT);
        String name;
        int port;
        int colon = h.lastIndexOf(':');
        if (colon > h.lastIndexOf(']')) {
            name = h.substring(0, colon);
            try {
                port = Integer.parseInt(h.substring(colon + 1));
            } catch (NumberFormatException e) {
                return false;
            }
        } else {
            name = h;
            port = 80;
        }
        return port == port() && hosts.contains(name);
    }

    private void route(HttpExchange ex) throws IOException {
        String path = ex.getRequestURI().getPath();
        String method = ex.getRequestMethod().toUpperCase(Locale.ROOT);
        if (path.equals("/cluster")) {
            if (!method.equals("GET")) throw new Answer(405, "use GET on /cluster");
            ObjectNode o = Json.MAPPER.createObjectNode();
            o.put("self", node.address());
            o.put("state", node.state());
            ArrayNode m = o.putArray("members");
            node.members().forEach(m::add);
            send(ex, node.state().equals("up") ? 200 : 503, o);
        } else if (path.equals("/merges") || path.equals("/merges/")) {
            if (method.equals("POST")) {
                submit(ex);
            } else if (method.equals("GET")) {
                ArrayNode all = Json.MAPPER.createArrayNode();
                for (Submission s : node.submissions()) all.add(status(s));
                send(ex, 200, all);
            } else {
                throw new Answer(405, "use GET or POST on /merges");
            }
        } else if (path.startsWith("/merges/")) {
            String id = path.substring("/merges/".length());
            if (!method.equals("GET")) throw new Answer(405, "use GET on /merges/" + id);
            Submission s = node.submission(id).orElseThrow(() -> new Answer(404, "no merge with id " + id));
            send(ex, 200, status(s));
        } else {
            throw new Answer(404, "no such resource: " + path + " (there are /merges, /merges/ID and /cluster)");
        }
    }

    private void submit(HttpExchange ex) throws IOException {
        String type = ex.getRequestHeaders().getFirst("Content-Type");
        String media = type == null ? "" : type.split(";", 2)[0].strip().toLowerCase(Locale.ROOT);
        if (!BODY_TYPES.contains(media)) {
            throw new Answer(415, "POST the config with Content-Type: application/yaml (or application/json), not " + (type == null ? "none" : "'" + type + "'"));
        }
        if (!node.state().equals("up")) throw new Answer(503, "this node takes no merges: " + node.state());
        Map<String, String> q = query(ex.getRequestURI().getRawQuery());
        String yaml = new String(body(ex), StandardCharsets.UTF_8);
        String out = q.get("out");
        if (out == null || out.isBlank()) {
            throw new Answer(400, "say where the output goes: POST /merges?out=/path/to/folder (a path every node can write)");
        }
        Path cwd = Path.of("").toAbsolutePath();
        try {
            MergeNode.Request r = MergeNode.Request.of(yaml, cwd, cwd.resolve(out));
            if (q.containsKey("dir")) {
                r = new MergeNode.Request(yaml, List.of(cwd, cwd.resolve(q.get("dir"))), r.out(), r.planOptions(), r.chunkElements(),
                        r.copyTokenizer(), r.writeModelCard());
            }
            if (q.containsKey("out_shard_size") || q.containsKey("random_seed") || q.containsKey("allow_crimes")) {
                PlanOptions d = PlanOptions.defaults();
                r = r.withPlanOptions(new PlanOptions(number(q, "random_seed", d.seed()), number(q, "out_shard_size", d.outShardSize()),
                        Boolean.parseBoolean(q.getOrDefault("allow_crimes", "false"))));
            }
            Submission s = node.submit(r);
            ObjectNode o = Json.MAPPER.createObjectNode();
            o.put("id", s.id());
            o.put("status", "/merges/" + s.id());
            send(ex, 202, o);
        } catch (InvalidPathException e) {
            throw new Answer(400, "not a usable path: " + e.getMessage());
        } catch (MergeException e) {
            throw new Answer(e.kind() == MergeException.Kind.USER ? 400 : 500, e.getMessage());
        }
    }

    /** The request body, at most maxBody bytes. */
    private byte[] body(HttpExchange ex) throws IOException {
        String len = ex.getRequestHeaders().getFirst("Content-Length");
        if (len != null) {
            try {
                if (Long.parseLong(len.strip()) > maxBody) throw tooLarge();
            } catch (NumberFormatException e) {
                throw new Answer(400, "Content-Length '" + len + "' is not a number");
            }
        }
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        byte[] buf = new byte[8192];
        try (InputStream in = ex.getRequestBody()) {
            int n;
            while ((n = in.read(buf)) > 0) {
                if (b.size() + n > maxBody) throw tooLarge();
                b.write(buf, 0, n);
            }
        }
        return b.toByteArray();
    }

    private Answer tooLarge() {
        return new Answer(413, "the body is larger than " + maxBody + " bytes; a merge config is much smaller");
    }

    private static long number(Map<String, String> q, String key, long dflt) {
        String v = q.get(key);
        if (v == null) return dflt;
        try {
            return Long.parseLong(v.strip());
        } catch (NumberFormatException e) {
            throw new Answer(400, "query parameter " + key + "=" + v + " is not a whole number");
        }
    }

    static ObjectNode status(Submission s) {
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("id", s.id());
        o.put("state", s.state().name().toLowerCase(Locale.ROOT));
        o.put("out", s.out().toString());
        Progress p = s.progress();
        if (p != null) {
            o.put("tensors_done", p.tensorsDone());
            o.put("tensors_total", p.tensorsTotal());
            o.put("fraction", p.fraction());
            o.put("input_bytes_done", p.inputBytesDone());
            o.put("input_bytes_total", p.inputBytesTotal());
            o.put("resumed_parts", p.resumedParts());
            ObjectNode lanes = o.putObject("tasks_by_lane");
            p.tasksByLane().forEach(lanes::put);
        }
        if (s.error() != null) o.put("error", Urls.redact(s.error()));
        ArrayNode h = o.putArray("history");
        for (Submission.Change c : s.history()) h.addObject().put("state", c.state().name().toLowerCase(Locale.ROOT)).put("at", c.at().toString());
        return o;
    }

    private static ObjectNode error(String message) {
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("error", Urls.redact(message));
        return o;
    }

    private static void send(HttpExchange ex, int code, Object body) {
        byte[] b;
        try {
            b = Json.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(body);
        } catch (IOException e) {
            throw new IllegalStateException("cannot write JSON", e);
        }
        sendRaw(ex, code, b);
    }

    private static void sendRaw(HttpExchange ex, int code, byte[] b) {
        if (ex.getResponseCode() != -1) return; // headers went out already: the client sees the body end early
        try {
            ex.getResponseHeaders().set("Content-Type", "application/json");
            ex.getResponseHeaders().set("Cache-Control", "no-store");
            ex.sendResponseHeaders(code, b.length);
            try (OutputStream o = ex.getResponseBody()) {
                o.write(b);
            }
        } catch (IOException e) {
            // the client went away
        }
    }

    static Map<String, String> query(String raw) {
        Map<String, String> q = new HashMap<>();
        if (raw == null) return q;
        for (String kv : raw.split("&")) {
            int eq = kv.indexOf('=');
            if (eq <= 0) continue;
            try {
                q.put(URLDecoder.decode(kv.substring(0, eq), StandardCharsets.UTF_8), URLDecoder.decode(kv.substring(eq + 1), StandardCharsets.UTF_8));
            } catch (IllegalArgumentException e) {
                throw new Answer(400, "malformed query parameter '" + kv + "'");
            }
        }
        return q;
    }

    @Override
    public void close() {
        server.stop(0);
    }
}
