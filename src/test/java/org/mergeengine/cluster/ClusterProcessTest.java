package org.mergeengine.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mergeengine.cluster.ClusterTestSupport.*;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Nodes as separate JVM processes started with the CLI; one of them is killed with SIGKILL mid-merge. */
class ClusterProcessTest {
    @TempDir
    Path dir;

    private final List<Process> processes = new ArrayList<>();

    @AfterEach
    void stop() {
        processes.forEach(Process::destroyForcibly);
    }

    private Process java(Path log, String... args) throws Exception {
        String java = ProcessHandle.current().info().command().orElse("java");
        List<String> cmd = new ArrayList<>(List.of(java, "-Xmx384m",
                "-Dpekko.cluster.split-brain-resolver.stable-after=2s",
                "-Dpekko.cluster.failure-detector.acceptable-heartbeat-pause=2s",
                "-Dpekko.cluster.failure-detector.heartbeat-interval=500ms",
                "-Dmerge-engine.cluster.tls.local-dir=" + TLS_DIR,
                "-cp", System.getProperty("java.class.path"), "org.mergeengine.cli.Main"));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        processes.add(p);
        return p;
    }

    /** Starts a node process and returns its address once it says it is up. */
    private String nodeProcess(String name, String... extra) throws Exception {
        Path log = dir.resolve(name + ".log");
        List<String> args = new ArrayList<>(List.of("node", "--port", "0", "--workers", "1", "--cache-dir", dir.resolve("cache-" + name).toString(), "--offline"));
        args.addAll(List.of(extra));
        Process p = java(log, args.toArray(String[]::new));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
        while (System.nanoTime() < deadline) {
            assertTrue(p.isAlive(), () -> name + " exited: " + read(log));
            for (String line : Files.readAllLines(log)) {
                if (line.startsWith("node pekko://") && line.contains(" is up")) return line.substring(5, line.indexOf(" is up"));
            }
            Thread.sleep(100);
        }
        throw new AssertionError(name + " did not come up: " + read(log));
    }

    static String read(Path f) {
        try {
            return Files.readString(f);
        } catch (Exception e) {
            return "";
        }
    }

    @Test
    void separateProcessesMergeToTheSameBytesAndSurviveASigkilledNode() throws Exception {
        String yaml = writeModels(dir);
        Files.writeString(dir.resolve("ties.yaml"), yaml);
        Path ref = reference(yaml, dir);

        String seed = nodeProcess("n1", "--lane-delay-ms", "40");
        nodeProcess("n2", "--seed-nodes", seed, "--lane-delay-ms", "40");
        Process victim = processes.get(1);
        Path cliLog = dir.resolve("cli.log");
        Process cli = java(cliLog, "ties.yaml", "out", "--cluster", seed, "--workers", "1", "--out-shard-size", "4000000",
                "--chunk-elements", String.valueOf(CHUNK), "--cache-dir", dir.resolve("cache-cli").toString(), "--offline", "--quiet");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (org.mergeengine.TestSupport.journalLines(dir, "out") < 6) {
            assertTrue(System.nanoTime() < deadline && cli.isAlive(), () -> "the merge did not start: " + read(cliLog));
            Thread.sleep(5);
        }
        assertFalse(Files.exists(dir.resolve("out")), "killed mid-merge");
        victim.destroyForcibly(); // SIGKILL: the node cannot leave; the split-brain resolver downs it
        assertTrue(cli.waitFor(180, TimeUnit.SECONDS), () -> "the merge did not finish: " + read(cliLog));
        assertEquals(0, cli.exitValue(), () -> read(cliLog));
        assertSameModel(ref, dir.resolve("out"));
    }

    @Test
    void httpSubmissionReportsQueuedRunningDoneWithProgress() throws Exception {
        String yaml = writeModels(dir);
        Path ref = reference(yaml, dir);
        try (MergeNode n = node(dir.resolve("cache"), List.of(), java.time.Duration.ofMillis(25), 1, "h");
             HttpFrontend http = HttpFrontend.start(n, "127.0.0.1", 0)) {
            java.net.http.HttpClient client = java.net.http.HttpClient.newHttpClient();
            String base = "http://127.0.0.1:" + http.port();
            token = http.token();
            var bad = post(client, base + "/merges?out=x", "merge_method: linerr\nmodels:\n  - model: base\n");
            assertEquals(400, bad.statusCode());
            assertTrue(bad.body().contains("linear"), "suggests the right method: " + bad.body());
            assertEquals(400, post(client, base + "/merges", yaml).statusCode(), "no out");
            assertEquals(404, client.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(base + "/merges/nope")).header("Authorization", "Bearer " + token).build(),
                    java.net.http.HttpResponse.BodyHandlers.ofString()).statusCode());

            String q = "&dir=" + java.net.URLEncoder.encode(dir.toString(), StandardCharsets.UTF_8);
            q += "&out_shard_size=4000000";
            var first = post(client, base + "/merges?out=" + dir.resolve("first") + q, yaml);
            var second = post(client, base + "/merges?out=" + dir.resolve("second") + q, yaml);
            assertEquals(202, first.statusCode(), first.body());
            var clash = post(client, base + "/merges?out=" + dir.resolve("first") + q, yaml);
            assertEquals(400, clash.statusCode(), "a second merge into a folder being written: " + clash.body());
            assertTrue(clash.body().contains("already"), clash.body());
            String id = org.mergeengine.formats.Json.MAPPER.readTree(second.body()).get("id").asText();
            List<String> seen = new ArrayList<>();
            List<Double> fractions = new ArrayList<>();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
            while (true) {
                var st = org.mergeengine.formats.Json.MAPPER.readTree(client.send(java.net.http.HttpRequest.newBuilder(
                        java.net.URI.create(base + "/merges/" + id)).header("Authorization", "Bearer " + token).build(),
                        java.net.http.HttpResponse.BodyHandlers.ofString()).body());
                String state = st.get("state").asText();
                if (seen.isEmpty() || !seen.get(seen.size() - 1).equals(state)) seen.add(state);
                if (state.equals("running") && st.has("fraction")) fractions.add(st.get("fraction").asDouble());
                if (state.equals("done") || state.equals("failed")) {
                    assertEquals("done", state, st.toString());
                    List<String> history = new ArrayList<>();
                    st.get("history").forEach(h -> history.add(h.get("state").asText()));
                    assertEquals(List.of("queued", "running", "done"), history);
                    assertEquals(st.get("tensors_total").asInt(), st.get("tensors_done").asInt());
                    break;
                }
                assertTrue(System.nanoTime() < deadline, "timed out in " + state);
                Thread.sleep(20);
            }
            assertEquals(List.of("queued", "running", "done"), seen, "states as polled");
            assertTrue(fractions.stream().anyMatch(f -> f > 0 && f < 1), "progress while running: " + fractions);
            assertTrue(fractions.equals(fractions.stream().sorted().toList()), "progress only grows");
            assertSameModel(ref, dir.resolve("second"));
        }
    }

    private String token;

    private java.net.http.HttpResponse<String> post(java.net.http.HttpClient c, String url, String body) throws Exception {
        return c.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(url)).header("Authorization", "Bearer " + token)
                        .header("Content-Type", "application/yaml").POST(java.net.http.HttpRequest.BodyPublishers.ofString(body)).build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());
    }

}
