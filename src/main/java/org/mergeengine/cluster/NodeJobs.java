package org.mergeengine.cluster;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.mergeengine.MergeException;
import org.mergeengine.api.MergeService;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.engine.OutputFolder;
import org.mergeengine.engine.TaskRunner;
import org.mergeengine.plan.PlanOptions;

/**
 * The jobs a node works on, planned once per node however many of its lanes take part: the
 * node plans the merge itself (its own cache downloads its inputs), checks that its plan hashes
 * to the coordinator's, and opens the shared temporary folder.
 */
final class NodeJobs {
    private record Entry(CompletableFuture<Prepared> prepared, int[] users) {}

    /** A job ready to run tasks on this node. */
    record Prepared(MergeService.Planned planned, TaskRunner runner) {
        void close() {
            runner.close();
            planned.close();
        }
    }

    private final MergeService service;
    private final long maxMemoryBytes;
    private final int lanes;
    private final Map<String, Entry> jobs = new HashMap<>();

    NodeJobs(MergeService service, long maxMemoryBytes, int lanes) {
        this.service = service;
        this.maxMemoryBytes = maxMemoryBytes;
        this.lanes = lanes;
    }

    synchronized CompletableFuture<Prepared> acquire(String jobId, Protocol.JobSpec spec) {
        Entry e = jobs.get(jobId);
        if (e == null) {
            e = new Entry(prepare(spec), new int[1]);
            jobs.put(jobId, e);
        }
        e.users()[0]++;
        return e.prepared();
    }

    synchronized void release(String jobId) {
        Entry e = jobs.get(jobId);
        if (e == null || --e.users()[0] > 0) return;
        jobs.remove(jobId);
        e.prepared().thenAccept(Prepared::close);
    }

    synchronized int open() {
        return jobs.size();
    }

    private CompletableFuture<Prepared> prepare(Protocol.JobSpec spec) {
        CompletableFuture<MergeService.Planned> planned;
        try {
            List<Path> search = spec.searchDirs().stream().map(Path::of).toList();
            planned = service.plan(ConfigParser.parse(spec.configText()), search,
                    new PlanOptions(spec.seed(), spec.outShardSize(), spec.allowCrimes()));
        } catch (RuntimeException ex) {
            return CompletableFuture.failedFuture(ex);
        }
        return planned.thenApply(p -> {
            try {
                String hash = OutputFolder.planHash(p.plan());
                if (!hash.equals(spec.planHash())) {
                    throw MergeException.user("this node's inputs differ from the coordinator's (plan " + hash.substring(0, 12)
                            + " here, " + spec.planHash().substring(0, 12) + " there): the same model paths must hold the same files on every node");
                }
                return new Prepared(p, TaskRunner.attach(p.plan(), Path.of(spec.tempDir()), spec.chunkElements(), maxMemoryBytes, lanes,
                        service.engine()));
            } catch (RuntimeException ex) {
                p.close();
                throw ex;
            }
        });
    }
}
