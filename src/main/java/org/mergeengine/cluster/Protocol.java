package org.mergeengine.cluster;

import java.util.List;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;
import org.mergeengine.engine.Progress;

/**
 * The cluster's work-pulling protocol. A coordinator offers a job to every worker lane the
 * Receptionist lists; a lane that could plan the same merge on its node answers {@link Ready} and
 * from then on every {@link Done} is also its request for the next task. Tasks name a part of a
 * tensor by index and element range; tensor bytes never travel in messages. The messages each
 * side sends itself (never across nodes) are here too, so that each protocol is sealed in one place.
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

    /** What a worker lane is told. */
    public sealed interface ToWorker {}

    public record Offer(String jobId, JobSpec spec, ActorRef<ToCoordinator> coordinator) implements ToWorker, ClusterMessage {}

    public record Assign(String jobId, int taskId, int tensor, long from, long to) implements ToWorker, ClusterMessage {}

    /** The job is over (done or failed), or this lane takes no more part in it: release what was opened for it. */
    public record Ended(String jobId) implements ToWorker, ClusterMessage {}

    /** The lane's node planned the job (or could not). */
    record Prepared(String jobId, NodeJobs.Prepared job, Throwable error) implements ToWorker {}

    /** The lane's task ended. */
    record Finished(String jobId, int taskId, long crc, Throwable error) implements ToWorker {}

    /** The job's coordinator (or its node) is gone. */
    record CoordinatorGone(String jobId) implements ToWorker {}

    /** What a coordinator is told. */
    public sealed interface ToCoordinator {}

    public record Ready(String jobId, ActorRef<ToWorker> worker, String lane) implements ToCoordinator, ClusterMessage {}

    public record Declined(String jobId, ActorRef<ToWorker> worker, String lane, String reason) implements ToCoordinator, ClusterMessage {}

    public record Done(String jobId, int taskId, long crc, ActorRef<ToWorker> worker, String lane) implements ToCoordinator, ClusterMessage {}

    public record Failed(String jobId, int taskId, String message, ActorRef<ToWorker> worker, String lane) implements ToCoordinator, ClusterMessage {}

    /** The Receptionist's current list of worker lanes. */
    record Listed(Set<ActorRef<ToWorker>> workers) implements ToCoordinator {}

    /** A lane stopped or its node left. */
    record Gone(ActorRef<ToWorker> worker) implements ToCoordinator {}

    /** A part a lane reported was read back here: its CRC32 matched, or not. */
    record Verified(int taskId, long crc, boolean ok, String lane) implements ToCoordinator {}

    /** Time to look for tasks past their deadline. */
    enum Tick implements ToCoordinator { INSTANCE }

    /** The staged output was finished (or closed after a failure). */
    record Closed(Progress progress, Throwable error) implements ToCoordinator {}
}
