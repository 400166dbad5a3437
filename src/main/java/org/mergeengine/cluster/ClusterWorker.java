package org.mergeengine.cluster;

import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;
import org.apache.pekko.stream.Materializer;
import org.mergeengine.MergeException;
import org.mergeengine.cluster.Protocol.CoordinatorGone;
import org.mergeengine.cluster.Protocol.Finished;
import org.mergeengine.cluster.Protocol.Prepared;
import org.mergeengine.engine.Device;

/**
 * One worker lane of a node, registered with the Receptionist so that a coordinator on any node
 * finds it. It takes part in any number of jobs, runs one task at a time, and leaves a job when
 * the job ends or its coordinator's node goes away.
 */
final class ClusterWorker {
    private ClusterWorker() {}

    private static final class Job {
        final ActorRef<Protocol.ToCoordinator> coordinator;
        NodeJobs.Prepared prepared;

        Job(ActorRef<Protocol.ToCoordinator> coordinator) {
            this.coordinator = coordinator;
        }
    }

    static Behavior<Protocol.ToWorker> create(NodeJobs jobs, Device device, String lane) {
        return Behaviors.setup(ctx -> {
            ctx.getSystem().receptionist().tell(Receptionist.register(Protocol.WORKERS, ctx.getSelf()));
            Materializer mat = Materializer.createMaterializer(ctx);
            Map<String, Job> active = new HashMap<>();
            return Behaviors.receive(Protocol.ToWorker.class)
                    .onMessage(Protocol.Offer.class, o -> {
                        if (active.containsKey(o.jobId())) return Behaviors.same();
                        active.put(o.jobId(), new Job(o.coordinator()));
                        ctx.watchWith(o.coordinator(), new CoordinatorGone(o.jobId()));
                        ctx.pipeToSelf(jobs.acquire(o.jobId(), o.spec()), (p, err) -> new Prepared(o.jobId(), p, err));
                        return Behaviors.same();
                    })
                    .onMessage(Prepared.class, p -> {
                        Job job = active.get(p.jobId());
                        if (job == null) return Behaviors.same(); // ended while it was being planned
                        if (p.error() != null) {
                            job.coordinator.tell(new Protocol.Declined(p.jobId(), ctx.getSelf(), lane, message(p.error())));
                            leave(ctx, jobs, active, p.jobId());
                        } else {
                            job.prepared = p.job();
                            job.coordinator.tell(new Protocol.Ready(p.jobId(), ctx.getSelf(), lane));
                        }
                        return Behaviors.same();
                    })
                    .onMessage(Protocol.Assign.class, a -> {
                        Job job = active.get(a.jobId());
                        if (job == null || job.prepared == null) return Behaviors.same();
                        long t0 = System.nanoTime();
                        CompletionStage<Long> crc = device.paced(job.prepared.runner().run(a.tensor(), a.from(), a.to(), device, mat), t0);
                        ctx.pipeToSelf(crc, (c, err) -> new Finished(a.jobId(), a.taskId(), c == null ? 0 : c, err));
                        return Behaviors.same();
                    })
                    .onMessage(Finished.class, f -> {
                        Job job = active.get(f.jobId());
                        if (job == null) return Behaviors.same();
                        if (f.error() != null) {
                            job.coordinator.tell(new Protocol.Failed(f.jobId(), f.taskId(), message(f.error()), ctx.getSelf(), lane));
                        } else {
                            job.coordinator.tell(new Protocol.Done(f.jobId(), f.taskId(), f.crc(), ctx.getSelf(), lane));
                        }
                        return Behaviors.same();
                    })
                    .onMessage(Protocol.Ended.class, e -> {
                        leave(ctx, jobs, active, e.jobId());
                        return Behaviors.same();
                    })
                    .onMessage(CoordinatorGone.class, g -> {
                        leave(ctx, jobs, active, g.jobId());
                        return Behaviors.same();
                    })
                    .build();
        });
    }

    private static void leave(ActorContext<Protocol.ToWorker> ctx, NodeJobs jobs, Map<String, Job> active, String jobId) {
        Job job = active.remove(jobId);
        if (job == null) return;
        ctx.unwatch(job.coordinator);
        jobs.release(jobId);
    }


    static String message(Throwable t) {
        t = MergeException.unwrap(t);
        return t instanceof MergeException ? t.getMessage() : String.valueOf(t);
    }
}
