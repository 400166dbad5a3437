package org.mergeengine.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mergeengine.cluster.ClusterTestSupport.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.engine.Progress;

/** Three nodes in one JVM on 127.0.0.1: same bytes as one node, nodes leaving and joining mid-merge, a lost coordinator. */
class ClusterTest {
    @TempDir
    Path dir;

    private final List<MergeNode> nodes = new ArrayList<>();

    @AfterEach
    void stop() {
        for (int i = nodes.size() - 1; i >= 0; i--) nodes.get(i).close();
    }

    private MergeNode add(MergeNode n) {
        nodes.add(n);
        return n;
    }

    @Test
    void threeNodesWriteTheBytesOfASingleNodeMerge() throws Exception {
        String yaml = writeModels(dir);
        Path ref = reference(yaml, dir);
        MergeNode a = add(node(dir.resolve("cache-a"), List.of(), Duration.ofMillis(20), 1, "a"));
        MergeNode b = add(node(dir.resolve("cache-b"), List.of(a.address()), Duration.ofMillis(20), 1, "b"));
        MergeNode c = add(node(dir.resolve("cache-c"), List.of(a.address()), Duration.ofMillis(20), 1, "c"));
        waitForMembers(a, 3);
        Submission s = a.submit(request(yaml, dir, dir.resolve("out")));
        Progress p = s.result().get(120, TimeUnit.SECONDS);
        assertSameModel(ref, dir.resolve("out"));
        assertTrue(tasksOn(p, a) > 0 && tasksOn(p, b) > 0 && tasksOn(p, c) > 0, "every node did work: " + p.tasksByLane());
        assertEquals(Submission.State.DONE, s.state());
        assertEquals(p.tensorsTotal(), p.tensorsDone());
        try (var l = Files.list(dir)) {
            assertFalse(l.anyMatch(x -> x.getFileName().toString().contains(".partial-")), "no temporary folder left");
        }
    }

    @Test
    void aWorkerNodeStoppedMidMergeLosesNothing() throws Exception {
        String yaml = writeModels(dir);
        Path ref = reference(yaml, dir);
        MergeNode a = add(node(dir.resolve("cache-a"), List.of(), Duration.ofMillis(40), 1, "a"));
        MergeNode b = add(node(dir.resolve("cache-b"), List.of(a.address()), Duration.ofMillis(40), 2, "b"));
        MergeNode c = add(node(dir.resolve("cache-c"), List.of(a.address()), Duration.ofMillis(40), 1, "c"));
        waitForMembers(a, 3);
        CountDownLatch bWorked = new CountDownLatch(1);
        Submission s = a.submit(request(yaml, dir, dir.resolve("out")));
        s.onProgress(p -> {
            if (tasksOn(p, b) >= 3) bWorked.countDown();
        });
        assertTrue(bWorked.await(60, TimeUnit.SECONDS), "node b took tasks");
        assertFalse(s.result().isDone(), "stopped mid-merge");
        b.close(); // leaves the cluster with tasks running
        Progress p = s.result().get(120, TimeUnit.SECONDS);
        assertSameModel(ref, dir.resolve("out"));
        assertTrue(tasksOn(p, c) > 0, "the remaining nodes finished the work: " + p.tasksByLane());
    }

    @Test
    void aNodeJoiningMidMergeTakesWork() throws Exception {
        String yaml = writeModels(dir);
        Path ref = reference(yaml, dir);
        MergeNode a = add(node(dir.resolve("cache-a"), List.of(), Duration.ofMillis(150), 1, "a"));
        CountDownLatch started = new CountDownLatch(2);
        Submission s = a.submit(request(yaml, dir, dir.resolve("out")));
        s.onProgress(p -> started.countDown());
        assertTrue(started.await(60, TimeUnit.SECONDS));
        MergeNode d = add(node(dir.resolve("cache-d"), List.of(a.address()), Duration.ZERO, 2, "d"));
        Progress p = s.result().get(120, TimeUnit.SECONDS);
        assertSameModel(ref, dir.resolve("out"));
        assertTrue(tasksOn(p, d) > 0, "the late node completed tasks: " + p.tasksByLane());
    }

    @Test
    void aLostCoordinatorFailsCleanlyAndASubmissionElsewhereResumes() throws Exception {
        String yaml = writeModels(dir);
        Path ref = reference(yaml, dir);
        MergeNode b = add(node(dir.resolve("cache-b"), List.of(), Duration.ofMillis(60), 1, "b"));
        MergeNode a = add(node(dir.resolve("cache-a"), List.of(b.address()), Duration.ofMillis(60), 1, "a"));
        waitForMembers(b, 2);
        CountDownLatch some = new CountDownLatch(8);
        Submission s = a.submit(request(yaml, dir, dir.resolve("out")));
        s.onProgress(p -> some.countDown());
        assertTrue(some.await(60, TimeUnit.SECONDS));
        a.close();
        Exception e = assertThrows(Exception.class, () -> s.result().get(60, TimeUnit.SECONDS));
        assertTrue(String.valueOf(e.getCause().getMessage()).contains("submit it again"), e.toString());
        assertFalse(Files.exists(dir.resolve("out")), "no output that looks complete");
        Submission again = b.submit(request(yaml, dir, dir.resolve("out")));
        Progress p = again.result().get(120, TimeUnit.SECONDS);
        assertTrue(p.resumedParts() >= 8, "verified parts were kept: " + p.resumedParts());
        assertSameModel(ref, dir.resolve("out"));
    }

    @Test
    void anApplicationsOwnActorSystemBecomesANode() throws Exception {
        String yaml = writeModels(dir);
        Path ref = reference(yaml, dir);
        MergeNode.Settings settings = MergeNode.Settings.local(2, List.of()).withExtra(FAST)
                .withHub(org.mergeengine.hub.HubSettings.fromEnvironment(java.util.Map.of(), dir.resolve("cache"), true));
        org.apache.pekko.actor.typed.ActorSystem<Void> system = org.apache.pekko.actor.typed.ActorSystem.create(
                org.apache.pekko.actor.typed.javadsl.Behaviors.empty(), "merge-engine", MergeNode.config(settings));
        try {
            MergeNode n = add(MergeNode.attach(system, settings));
            List<Progress> events = new java.util.concurrent.CopyOnWriteArrayList<>();
            java.util.concurrent.CompletionStage<Progress> done = n.submit(request(yaml, dir, dir.resolve("out"))).onProgress(events::add).result();
            Progress p = done.toCompletableFuture().get(120, TimeUnit.SECONDS);
            assertSameModel(ref, dir.resolve("out"));
            assertFalse(events.isEmpty(), "progress events arrived");
            assertEquals(p.tensorsTotal(), events.get(events.size() - 1).tensorsDone());
            assertFalse(system.whenTerminated().isCompleted(), "the caller's actor system is the caller's to stop");
        } finally {
            system.terminate();
            system.getWhenTerminated().toCompletableFuture().get(60, TimeUnit.SECONDS);
        }
    }

    @Test
    void aNodeBudgetSmallerThanOneTaskStillFinishes() throws Exception {
        String yaml = writeModels(dir);
        Path ref = reference(yaml, dir);
        // 1 MB cannot hold a single task: lanes then run one task at a time on the node, beyond the budget.
        MergeNode.Settings s = MergeNode.Settings.local(3, List.of()).withExtra(FAST)
                .withHub(org.mergeengine.hub.HubSettings.fromEnvironment(java.util.Map.of(), dir.resolve("cache"), true));
        s = new MergeNode.Settings(s.host(), s.port(), s.seedNodes(), s.lanes(), 1 << 20, s.hub(), 1, s.extra());
        MergeNode n = add(MergeNode.start(s));
        Progress p = n.submit(request(yaml, dir, dir.resolve("out"))).result().get(120, TimeUnit.SECONDS);
        assertSameModel(ref, dir.resolve("out"));
        assertTrue(p.tasksByLane().size() >= 2, "lanes took turns: " + p.tasksByLane());
    }

    static void waitForMembers(MergeNode n, int count) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (n.members().size() < count) {
            if (System.nanoTime() > deadline) throw new AssertionError("cluster did not form: " + n.members());
            Thread.sleep(50);
        }
    }
}
