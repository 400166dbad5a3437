package org.mergeengine.cluster;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import org.mergeengine.MergeException;
import org.mergeengine.engine.Progress;
import org.mergeengine.formats.Json;

/**
 * A node's HTTP interface: {@code POST /merges?out=DIR[&dir=DIR][&out_shard_size=BYTES][&random_seed=N][&allow_crimes=true]}
 * with a YAML body queues a merge
 * and answers its id; {@code GET /merges/ID} gives its state and progress as JSON; {@code GET
 * /merges} lists them; {@code GET /cluster} lists the members. It has no authentication and
 * takes file paths, so it binds to 127.0.0.1 unless told otherwise.
 */
public final class HttpFrontend implements AutoCloseable {
    private final HttpServer server;
    private final MergeNode node;

    private HttpFrontend(HttpServer server, MergeNode node) {
        this.server = server;
        this.node = node;
    }

    public static HttpFrontend start(MergeNode node, String host, int port) {
        HttpServer server;
        try {
            server = HttpServer.create(new InetSocketAddress(host, port), 0);
        } catch (IOException e) {
            throw MergeException.user("cannot serve HTTP on " + host + ":" + port + ": " + e.getMessage());
        }
        HttpFrontend f = new HttpFrontend(server, node);
        server.createContext("/merges", f::merges);
        server.createContext("/cluster", f::cluster);
        server.setExecutor(org.mergeengine.engine.Threads.daemonPool("merge-http"));
        server.start();
        return f;
    }

    public int port() {
        return server.getAddress().getPort();
    }

    private void merges(HttpExchange ex) throws IOException {
        try (ex) {
            String path = ex.getRequestURI().getPath();
            String method = ex.getRequestMethod().toUpperCase(Locale.ROOT);
            if (path.equals("/merges") || path.equals("/merges/")) {
                if (method.equals("POST")) {
                    submit(ex);
                } else if (method.equals("GET")) {
                    ArrayNode all = Json.MAPPER.createArrayNode();
                    for (Submission s : node.submissions()) all.add(status(s));
                    send(ex, 200, all);
                } else {
                    send(ex, 405, error("use GET or POST on /merges"));
                }
                return;
            }
            String id = path.substring("/merges/".length());
            if (!method.equals("GET")) {
                send(ex, 405, error("use GET on /merges/" + id));
                return;
            }
            node.submission(id).ifPresentOrElse(s -> send(ex, 200, status(s)), () -> send(ex, 404, error("no merge with id " + id)));
        } catch (RuntimeException e) {
            send(ex, 500, error("internal error: " + e));
        }
    }

    private void submit(HttpExchange ex) throws IOException {
        Map<String, String> q = query(ex.getRequestURI().getRawQuery());
        String out = q.get("out");
        if (out == null || out.isBlank()) {
            send(ex, 400, error("say where the output goes: POST /merges?out=/path/to/folder (a path every node can write)"));
            return;
        }
        String yaml = new String(ex.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
        Path cwd = Path.of("").toAbsolutePath();
        try {
            MergeNode.Request r = MergeNode.Request.of(yaml, cwd, cwd.resolve(out));
            if (q.containsKey("dir")) {
                r = new MergeNode.Request(yaml, java.util.List.of(cwd, cwd.resolve(q.get("dir"))), r.out(), r.planOptions(), r.chunkElements(),
                        r.copyTokenizer(), r.writeModelCard());
            }
            if (q.containsKey("out_shard_size") || q.containsKey("random_seed") || q.containsKey("allow_crimes")) {
                org.mergeengine.plan.PlanOptions d = org.mergeengine.plan.PlanOptions.defaults();
                r = r.withPlanOptions(new org.mergeengine.plan.PlanOptions(number(q, "random_seed", d.seed()), number(q, "out_shard_size", d.outShardSize()),
                        Boolean.parseBoolean(q.getOrDefault("allow_crimes", "false"))));
            }
            Submission s = node.submit(r);
            ObjectNode o = Json.MAPPER.createObjectNode();
            o.put("id", s.id());
            o.put("status", "/merges/" + s.id());
            send(ex, 202, o);
        } catch (MergeException e) {
            send(ex, 400, error(e.getMessage()));
        }
    }

    private static long number(Map<String, String> q, String key, long dflt) {
        String v = q.get(key);
        if (v == null) return dflt;
        try {
            return Long.parseLong(v.strip());
        } catch (NumberFormatException e) {
            throw MergeException.user("query parameter " + key + "=" + v + " is not a whole number");
        }
    }

    private void cluster(HttpExchange ex) {
        try (ex) {
            ObjectNode o = Json.MAPPER.createObjectNode();
            o.put("self", node.address());
            ArrayNode m = o.putArray("members");
            node.members().forEach(m::add);
            send(ex, 200, o);
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
        if (s.error() != null) o.put("error", s.error());
        ArrayNode h = o.putArray("history");
        for (Submission.Change c : s.history()) h.addObject().put("state", c.state().name().toLowerCase(Locale.ROOT)).put("at", c.at().toString());
        return o;
    }

    private static ObjectNode error(String message) {
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("error", message);
        return o;
    }

    private static void send(HttpExchange ex, int code, Object body) {
        try {
            byte[] b = Json.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(body);
            ex.getResponseHeaders().set("Content-Type", "application/json");
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
            q.put(URLDecoder.decode(kv.substring(0, eq), StandardCharsets.UTF_8), URLDecoder.decode(kv.substring(eq + 1), StandardCharsets.UTF_8));
        }
        return q;
    }

    @Override
    public void close() {
        server.stop(0);
    }

}
