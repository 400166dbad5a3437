package org.mergeengine.cluster;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mergeengine.cluster.ClusterTestSupport.FAST;
import static org.mergeengine.cluster.ClusterTestSupport.assertSameModel;
import static org.mergeengine.cluster.ClusterTestSupport.reference;
import static org.mergeengine.cluster.ClusterTestSupport.request;
import static org.mergeengine.cluster.ClusterTestSupport.writeModels;

import com.typesafe.config.ConfigFactory;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.engine.Device;
import org.mergeengine.engine.Progress;
import org.mergeengine.hub.HubSettings;

/** A cluster lane that takes a task and never answers does not stall the merge: the task's deadline hands it to another lane. */
class ClusterDeadlineTest {
    @TempDir
    Path dir;

    /**
     * A member's lane that joins every merge at once, takes tasks and stays silent; when the
     * coordinator drops it, it answers the task it held (too late).
     */
    static Behavior<Protocol.ToWorker> hungLane(List<Protocol.Assign> taken, List<String> endedJobs) {
        return Behaviors.setup(ctx -> {
            ctx.getSystem().receptionist().tell(Receptionist.register(Protocol.WORKERS, ctx.getSelf()));
            Map<String, ActorRef<Protocol.ToCoordinator>> coordinators = new HashMap<>();
            return Behaviors.receive(Protocol.ToWorker.class)
                    .onMessage(Protocol.Offer.class, o -> {
                        coordinators.put(o.jobId(), o.coordinator());
                        o.coordinator().tell(new Protocol.Ready(o.jobId(), ctx.getSelf(), "hung"));
                        return Behaviors.same();
                    })
                    .onMessage(Protocol.Assign.class, a -> {
                        taken.add(a);
                        return Behaviors.same();
                    })
                    .onMessage(Protocol.Ended.class, e -> {
                        endedJobs.add(e.jobId());
                        // the late answer, for a task now another lane's: the coordinator must ignore it
                        for (Protocol.Assign a : taken) {
                            coordinators.get(e.jobId()).tell(new Protocol.Done(e.jobId(), a.taskId(), 0, ctx.getSelf(), "hung"));
                        }
                        return Behaviors.same();
                    })
                    .onAnyMessage(m -> Behaviors.same())
                    .build();
        });
    }

    @Test
    void aTaskPastItsDeadlineRunsOnAnotherLaneWithTheSameBytes() throws Exception {
        String yaml = writeModels(dir);
        Path ref = reference(yaml, dir);
        MergeNode.Settings settings = MergeNode.Settings.local(1, List.of())
                .withLanes(List.of(Device.simulated("a0", Duration.ofMillis(20))))
                .withExtra(FAST.withFallback(ConfigFactory.parseString("""
                        merge-engine.cluster.task-deadline.base = 2s
                        merge-engine.cluster.task-deadline.per-gib = 0s
                        """)))
                .withHub(HubSettings.fromEnvironment(Map.of(), dir.resolve("cache"), true));
        ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "merge-engine", MergeNode.config(settings));
        List<Protocol.Assign> taken = new CopyOnWriteArrayList<>();
        List<String> ended = new CopyOnWriteArrayList<>();
        try (MergeNode node = MergeNode.attach(system, settings)) {
            system.systemActorOf(hungLane(taken, ended), "hung-lane", Props.empty());
            awaitLanes(system, 2);
            Submission s = node.submit(request(yaml, dir, dir.resolve("out")));
            Progress p = s.result().toCompletableFuture().get(120, TimeUnit.SECONDS);
            assertFalse(taken.isEmpty(), "the hung lane took a task");
            assertTrue(ended.size() >= 1, "the coordinator dropped the hung lane");
            assertFalse(p.tasksByLane().containsKey("hung"), "no task is counted for the hung lane: " + p.tasksByLane());
            assertSameModel(ref, dir.resolve("out"));
        } finally {
            system.terminate();
            system.getWhenTerminated().toCompletableFuture().get(60, TimeUnit.SECONDS);
        }
    }

    /** Waits until the Receptionist lists {@code n} worker lanes, so that the hung one is offered the merge from its start. */
    private static void awaitLanes(ActorSystem<Void> system, int n) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
            Receptionist.Listing l = AskPattern.<Receptionist.Command, Receptionist.Listing>ask(system.receptionist(),
                    reply -> Receptionist.find(Protocol.WORKERS, reply), Duration.ofSeconds(5), system.scheduler()).toCompletableFuture().get();
            if (l.getServiceInstances(Protocol.WORKERS).size() >= n) return;
            if (System.nanoTime() > deadline) throw new AssertionError("lanes not listed: " + l);
            Thread.sleep(50);
        }
    }
}
