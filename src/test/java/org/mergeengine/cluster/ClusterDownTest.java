package org.mergeengine.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mergeengine.cluster.ClusterTestSupport.TLS_DIR;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.AddressFromURIString;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Down;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.MergeException;

/**
 * A node the cluster downs (as the split-brain resolver does after a partition) cannot rejoin with
 * its terminated actor system: it must not linger as a zombie that answers HTTP and fails every merge.
 */
class ClusterDownTest {
    @TempDir
    Path dir;
    private final List<AutoCloseable> open = new ArrayList<>();
    private final List<Process> processes = new ArrayList<>();

    @AfterEach
    void stop() throws Exception {
        processes.forEach(Process::destroyForcibly);
        for (int i = open.size() - 1; i >= 0; i--) open.get(i).close();
    }

    private <T extends AutoCloseable> T keep(T c) {
        open.add(c);
        return c;
    }

    static final String YAML = "merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\n";

    @Test
    void aDownedNodeSaysSoRefusesWorkAndTellsItsOwner() throws Exception {
        String ties = ClusterTestSupport.writeModels(dir);
        MergeNode seed = keep(ClusterTestSupport.node(dir.resolve("c1"), List.of(), Duration.ofMillis(500), 1, "s"));
        MergeNode victim = keep(ClusterTestSupport.node(dir.resolve("c2"), List.of(seed.address()), Duration.ofMillis(500), 1, "v"));
        Submission running = victim.submit(ClusterTestSupport.request(ties, dir, dir.resolve("merged")));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (running.progress() == null || running.progress().tensorsDone() == 0) {
            assertTrue(System.nanoTime() < deadline && running.state() != Submission.State.FAILED, () -> "the merge did not start: " + running.error());
            Thread.sleep(20);
        }
        CountDownLatch removed = new CountDownLatch(1);
        victim.onRemoved(removed::countDown);
        HttpFrontend http = keep(HttpFrontend.start(victim, "127.0.0.1", 0));
        Map<String, String> auth = Map.of("Authorization", "Bearer " + http.token());
        var before = RawHttp.send(http.port(), "GET", "/cluster", auth, null, false);
        assertEquals(200, before.status(), before.body());
        assertEquals("up", before.json().get("state").asText());
        assertEquals("up", victim.state());

        Cluster.get(seed.system()).manager().tell(new Down(AddressFromURIString.parse(victim.address())));
        assertTrue(removed.await(120, TimeUnit.SECONDS), "the owner was told");
        assertTrue(victim.state().startsWith("down"), victim.state());
        assertEquals(Submission.State.FAILED, running.state(), "the merge it coordinated is not left running");
        assertTrue(running.error().contains("removed this node"), running.error());
        assertTrue(running.result().isCompletedExceptionally());
        assertFalse(Files.exists(dir.resolve("merged")));

        var after = RawHttp.send(http.port(), "GET", "/cluster", auth, null, false);
        assertEquals(503, after.status(), after.body());
        assertTrue(after.json().get("state").asText().startsWith("down"), after.body());
        var post = RawHttp.send(http.port(), "POST", "/merges?out=" + dir.resolve("out"), Map.of("Authorization", "Bearer " + http.token(),
                "Content-Type", "application/yaml"), YAML.getBytes(StandardCharsets.UTF_8), false);
        assertEquals(503, post.status(), post.body());
        assertTrue(post.json().get("error").asText().contains("restarted"), post.body());
        MergeException e = assertThrows(MergeException.class, () -> victim.submit(ClusterTestSupport.request(YAML, dir, dir.resolve("out"))));
        assertTrue(e.getMessage().contains("takes no merges"), e.getMessage());
        assertFalse(seed.members().contains(victim.address()), seed.members().toString());
    }

    @Test
    void aDownedNodeProcessExitsWithAStatusASupervisorSees() throws Exception {
        MergeNode seed = keep(ClusterTestSupport.node(dir.resolve("c1"), List.of(), Duration.ZERO, 1, "s"));
        Path log = dir.resolve("node.log");
        String java = ProcessHandle.current().info().command().orElse("java");
        List<String> cmd = List.of(java, "-Xmx256m", "-Dmerge-engine.cluster.tls.local-dir=" + TLS_DIR,
                "-Dpekko.cluster.failure-detector.acceptable-heartbeat-pause=2s", "-Dpekko.cluster.failure-detector.heartbeat-interval=500ms",
                "-cp", System.getProperty("java.class.path"), "org.mergeengine.cli.Main",
                "node", "--port", "0", "--seed-nodes", seed.address(), "--workers", "1", "--cache-dir", dir.resolve("cache").toString(), "--offline",
                "--http-port", "0", "--http-token-file", dir.resolve("http.token").toString());
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        processes.add(p);
        String address = null;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (address == null) {
            assertTrue(p.isAlive() && System.nanoTime() < deadline, () -> "the node did not come up: " + ClusterProcessTest.read(log));
            for (String line : Files.readAllLines(log)) {
                if (line.startsWith("node pekko://") && line.contains(" is up")) address = line.substring(5, line.indexOf(" is up"));
            }
            Thread.sleep(100);
        }
        assertTrue(Files.exists(dir.resolve("http.token")));
        Cluster.get(seed.system()).manager().tell(new Down(AddressFromURIString.parse(address)));
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), () -> "a downed node keeps running: " + ClusterProcessTest.read(log));
        String out = ClusterProcessTest.read(log);
        assertEquals(3, p.exitValue(), out);
        assertTrue(out.contains("removed this node") && out.contains("restarted"), out);
    }
}
