package org.mergeengine.cluster;

import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * The cluster's work-pulling protocol. A coordinator offers a job to every worker lane the
 * Receptionist lists; a lane that could plan the same merge on its node answers {@link Ready} and
 * from then on every {@link Done} is also its request for the next task. Tasks name a part of a
 * tensor by index and element range; tensor bytes never travel in messages.
 */
public final class Protocol {
    private Protocol() {}

    public static final ServiceKey<ToWorker> WORKERS = ServiceKey.create(ToWorker.class, "merge-engine-worker");

    /**
     * What a node needs to plan the same merge as the coordinator: the config text, where its
     * relative model paths resolve, the plan options, and the shared temporary folder.
     */
    public record JobSpec(String configText, List<String> searchDirs, long seed, long outShardSize, boolean allowCrimes,
                          int chunkElements, String tempDir, String planHash) implements ClusterMessage {}

    public interface ToWorker {}

    public record Offer(String jobId, JobSpec spec, ActorRef<ToCoordinator> coordinator) implements ToWorker, ClusterMessage {}

    public record Assign(String jobId, int taskId, int tensor, long from, long to) implements ToWorker, ClusterMessage {}

    /** The job is over (done or failed): release what was opened for it. */
    public record Ended(String jobId) implements ToWorker, ClusterMessage {}

    public interface ToCoordinator {}

    public record Ready(String jobId, ActorRef<ToWorker> worker, String lane) implements ToCoordinator, ClusterMessage {}

    public record Declined(String jobId, ActorRef<ToWorker> worker, String lane, String reason) implements ToCoordinator, ClusterMessage {}

    public record Done(String jobId, int taskId, long crc, ActorRef<ToWorker> worker, String lane) implements ToCoordinator, ClusterMessage {}

    public record Failed(String jobId, int taskId, String message, ActorRef<ToWorker> worker, String lane) implements ToCoordinator, ClusterMessage {}
}
