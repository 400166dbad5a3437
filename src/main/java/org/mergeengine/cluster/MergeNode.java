package org.mergeengine.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.Address;
import org.apache.pekko.actor.AddressFromURIString;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Join;
import org.apache.pekko.cluster.typed.JoinSeedNodes;
import org.mergeengine.MergeException;
import org.mergeengine.api.MergeService;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.config.MergeConfig;
import org.mergeengine.engine.Device;
import org.mergeengine.engine.MergeEngine;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.engine.OutputFolder;
import org.mergeengine.engine.StagedOutput;
import org.mergeengine.hub.HubSettings;
import org.mergeengine.plan.PlanOptions;
import org.mergeengine.plan.Planner;

/**
 * merge-engine as a member of a Pekko cluster: its worker lanes take tasks of any merge in the
 * cluster, and merges submitted to it (from Java, the CLI or HTTP) are planned and coordinated
 * here and run on the lanes of every node. Submitted merges queue and run
 * {@code maxConcurrentMerges} at a time.
 *
 * <p>A node the cluster removes (downed by the split-brain resolver after a partition, or by
 * another member) cannot come back: its actor system terminates. It then says so in
 * {@link #state()}, refuses new merges, fails its queued ones, and runs the callbacks given to
 * {@link #onRemoved}; the {@code node} command exits with a nonzero status so that a supervisor
 * starts it again.
 */
public final class MergeNode implements AutoCloseable, HttpFrontend.Backend {
    /**
     * How a node starts.
     * @param host the address other nodes reach this one at
     * @param port its port (0: any free port)
     * @param seedNodes nodes to join, as {@code pekko://merge-engine@host:port}; empty: start a new cluster
     * @param lanes this node's worker lanes (an empty list: a node that only coordinates)
     * @param maxMemoryBytes budget for tensor data on this node
     * @param hub where this node's cache and hub are
     * @param maxConcurrentMerges merges coordinated here at once; the rest queue
     * @param extra Pekko settings layered over the defaults (may be empty)
     */
    public record Settings(String host, int port, List<String> seedNodes, List<Device> lanes, long maxMemoryBytes, HubSettings hub,
                           int maxConcurrentMerges, Config extra) {
        public static Settings local(int lanes, List<String> seeds) {
            List<Device> l = new ArrayList<>();
            for (int i = 0; i < lanes; i++) l.add(Device.cpu(i));
            return new Settings("127.0.0.1", 0, seeds, l, MergeOptions.defaultBudget(), HubSettings.fromEnvironment(System.getenv(), null, false),
                    1, ConfigFactory.empty());
        }

        public Settings withLanes(List<Device> l) {
            return new Settings(host, port, seedNodes, l, maxMemoryBytes, hub, maxConcurrentMerges, extra);
        }

        public Settings withExtra(Config c) {
            return new Settings(host, port, seedNodes, lanes, maxMemoryBytes, hub, maxConcurrentMerges, c.withFallback(extra));
        }

        public Settings withHub(HubSettings h) {
            return new Settings(host, port, seedNodes, lanes, maxMemoryBytes, h, maxConcurrentMerges, extra);
        }
    }

    /**
     * A merge to run.
     * @param configText the mergekit YAML
     * @param searchDirs where relative model paths resolve (the same paths on every node)
     * @param out the output folder, on storage every node writes to at this path
     */
    public record Request(String configText, List<Path> searchDirs, Path out, PlanOptions planOptions, int chunkElements,
                          boolean copyTokenizer, boolean writeModelCard) {
        public static Request of(String configText, Path dir, Path out) {
            return new Request(configText, List.of(dir.toAbsolutePath()), out.toAbsolutePath(), PlanOptions.defaults(), MergeOptions.DEFAULT_CHUNK, true, true);
        }

        public Request withChunkElements(int n) {
            return new Request(configText, searchDirs, out, planOptions, n, copyTokenizer, writeModelCard);
        }

        public Request withPlanOptions(PlanOptions p) {
            return new Request(configText, searchDirs, out, p, chunkElements, copyTokenizer, writeModelCard);
        }
    }

    private final ActorSystem<?> system;
    private final boolean ownsSystem;
    private final Settings settings;
    private final MergeService service;
    private final String name;
    private final Map<String, Submission> submissions = new ConcurrentHashMap<>();
    private final Deque<Submission> queued = new ArrayDeque<>();
    private final AtomicInteger ids = new AtomicInteger();
    private int runningMerges;
    private static final AtomicInteger NODES = new AtomicInteger();
    private final int nodeNumber = NODES.incrementAndGet();

    private MergeNode(ActorSystem<?> system, boolean owns, Settings settings) {
        this.system = system;
        this.ownsSystem = owns;
        this.settings = settings;
        @SuppressWarnings("unchecked")
        ActorSystem<Void> sys = (ActorSystem<Void>) system;
        this.service = new MergeService(new MergeEngine(sys), settings.hub());
        Address self = Cluster.get(system).selfMember().address();
        this.name = self.host().getOrElse(() -> "local") + ":" + self.port().getOrElse(() -> 0);
        NodeJobs jobs = new NodeJobs(service, settings.maxMemoryBytes(), Math.max(1, settings.lanes().size()));
        this.lanes = system.systemActorOf(Behaviors.<Stop>setup(ctx -> {
            int i = 0;
            for (Device d : settings.lanes()) ctx.spawn(ClusterWorker.create(jobs, d, name + "/" + d.name()), "lane-" + (i++));
            return Behaviors.receiveMessage(stop -> Behaviors.stopped());
        }), "merge-node-" + nodeNumber, Props.empty());
        org.apache.pekko.cluster.Cluster.get(system.classicSystem()).registerOnMemberRemoved(this::removed);
    }

    private volatile String state = "up";
    private final List<Runnable> onRemoved = new CopyOnWriteArrayList<>();

    /** Runs when the cluster removes this node against its will (not when it is closed). */
    public MergeNode onRemoved(Runnable r) {
        onRemoved.add(r);
        if (state.startsWith("down")) r.run();
        return this;
    }

    /** "up" while this node is a member; otherwise why it is not ("down: ...", "stopped"). */
    @Override
    public String state() {
        return state;
    }

    private void removed() {
        if (closed.get()) {
            state = "stopped";
            return;
        }
        state = "down: the cluster removed this node (a partition or a failure detector downed it); it takes no more work and must be restarted";
        List<Submission> dropped;
        synchronized (this) {
            dropped = new ArrayList<>(queued);
            queued.clear();
        }
        for (Submission s : dropped) s.complete(null, MergeException.user("not started: " + state));
        // Their coordinators stopped with the actor system and will not report; the temporary folders stay for a resume.
        for (Submission s : submissions.values()) {
            if (s.state() == Submission.State.RUNNING) s.complete(null, MergeException.user("stopped: " + state));
        }
        for (Runnable r : onRemoved) {
            try {
                r.run();
            } catch (RuntimeException e) {
                // one callback's failure must not keep the others from running
            }
        }
    }

    private enum Stop { INSTANCE }

    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

    private final org.apache.pekko.actor.typed.ActorRef<Stop> lanes;

    /**
     * The Pekko settings of a node: the given ones over the cluster defaults over application.conf,
     * with remoting over TLS (see {@link ClusterTls}); refused for a non-loopback address without
     * a key store.
     */
    public static Config config(Settings s) {
        Config all = ConfigFactory.parseMap(Map.of("pekko.remote.artery.canonical.hostname", s.host(), "pekko.remote.artery.canonical.port", s.port()))
                .withFallback(ConfigFactory.systemProperties())
                .withFallback(s.extra())
                .withFallback(ConfigFactory.parseResources(MergeNode.class.getClassLoader(), "merge-engine-cluster.conf"))
                .withFallback(ConfigFactory.load())
                .resolve();
        return ClusterTls.settings(all, s.host()).withFallback(all);
    }

    /** Starts a node in a new actor system (named {@code merge-engine}) and waits until it is an Up member. */
    public static MergeNode start(Settings s) {
        Config config = config(s);
        ActorSystem<Void> system;
        try {
            system = ActorSystem.create(Behaviors.empty(), "merge-engine", config);
        } catch (RuntimeException e) {
            throw MergeException.user("cannot start a cluster node on " + s.host() + ":" + s.port() + ": " + e.getMessage());
        }
        try {
            join(system, s.seedNodes());
            return new MergeNode(system, true, s);
        } catch (RuntimeException e) {
            system.terminate();
            throw e;
        }
    }

    /**
     * Makes a node of an actor system the caller created (with {@code pekko.actor.provider = cluster}
     * and the settings of {@link #config}); joins the seed nodes unless it is a member already.
     */
    public static MergeNode attach(ActorSystem<?> system, Settings s) {
        if (Cluster.get(system).selfMember().status() != MemberStatus.up()) join(system, s.seedNodes());
        return new MergeNode(system, false, s);
    }

    private static void join(ActorSystem<?> system, List<String> seeds) {
        Cluster cluster = Cluster.get(system);
        if (seeds.isEmpty()) {
            cluster.manager().tell(Join.create(cluster.selfMember().address()));
        } else {
            List<Address> addresses = new ArrayList<>();
            for (String s : seeds) {
                try {
                    addresses.add(AddressFromURIString.parse(s.strip()));
                } catch (RuntimeException e) {
                    throw MergeException.user("seed node '" + s + "' is not an address like pekko://merge-engine@host:2552");
                }
            }
            cluster.manager().tell(new JoinSeedNodes(addresses));
        }
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (cluster.selfMember().status() != MemberStatus.up()) {
            if (System.nanoTime() > deadline) {
                throw MergeException.user("could not join the cluster through " + (seeds.isEmpty() ? "itself" : String.join(", ", seeds))
                        + " within 60 s; check that a seed node runs and is reachable");
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new MergeException(MergeException.Kind.INTERNAL, "interrupted while joining the cluster");
            }
        }
    }

    /** This node's address, as other nodes list it as a seed: {@code pekko://merge-engine@host:port}. */
    @Override
    public String address() {
        return Cluster.get(system).selfMember().address().toString();
    }

    public ActorSystem<?> system() {
        return system;
    }

    /** The members of the cluster that are Up, as this node sees them. */
    @Override
    public List<String> members() {
        List<String> m = new ArrayList<>();
        Cluster.get(system).state().getMembers().forEach(x -> {
            if (x.status() == MemberStatus.up()) m.add(x.address().toString());
        });
        return m;
    }

    /**
     * Queues a merge; it is planned and coordinated on this node and its tasks run on every node's
     * lanes. Config mistakes are reported here, before anything is queued.
     */
    @Override
    public Submission submit(Request r) {
        if (!state.equals("up")) throw MergeException.user("this node takes no merges: " + state);
        MergeConfig cfg = ConfigParser.parse(r.configText());
        Planner.checkConfig(cfg);
        OutputFolder.check(r.out());
        Submission s = new Submission("m-" + nodeNumber + "-" + ids.incrementAndGet(), r);
        synchronized (this) {
            // Two merges into one folder would share its temporary folder.
            for (Submission other : submissions.values()) {
                if (other.out().equals(r.out()) && (other.state() == Submission.State.QUEUED || other.state() == Submission.State.RUNNING)) {
                    throw MergeException.user("merge " + other.id() + " into " + r.out() + " is already " + other.state().name().toLowerCase(java.util.Locale.ROOT)
                            + " on this node; wait for it, or choose another output folder");
                }
            }
            submissions.put(s.id(), s);
            queued.add(s);
        }
        startQueued();
        return s;
    }

    @Override
    public Optional<Submission> submission(String id) {
        return Optional.ofNullable(submissions.get(id));
    }

    @Override
    public List<Submission> submissions() {
        return submissions.values().stream().sorted(java.util.Comparator.comparing(Submission::id)).toList();
    }

    private void startQueued() {
        List<Submission> start = new ArrayList<>();
        synchronized (this) {
            while (runningMerges < Math.max(1, settings.maxConcurrentMerges()) && !queued.isEmpty()) {
                runningMerges++;
                start.add(queued.poll());
            }
        }
        for (Submission s : start) {
            s.move(Submission.State.RUNNING);
            run(s).whenComplete((p, err) -> {
                synchronized (this) {
                    runningMerges--;
                }
                s.complete(p, err == null ? null : MergeException.unwrap(err));
                startQueued();
            });
        }
    }

    private CompletableFuture<org.mergeengine.engine.Progress> run(Submission s) {
        Request r = s.request();
        MergeConfig cfg = ConfigParser.parse(r.configText());
        return service.plan(cfg, r.searchDirs(), r.planOptions()).thenCompose(planned -> {
            StagedOutput staged;
            try {
                staged = StagedOutput.open(planned.plan(), r.out(), service.engine().io());
            } catch (RuntimeException e) {
                planned.close();
                throw e;
            }
            PlanOptions po = r.planOptions();
            Protocol.JobSpec spec = new Protocol.JobSpec(r.configText(), r.searchDirs().stream().map(p -> p.toAbsolutePath().toString()).toList(),
                    po.seed(), po.outShardSize(), po.allowCrimes(), r.chunkElements(), staged.tempDir().toString(),
                    OutputFolder.planHash(planned.plan()));
            MergeOptions opts = new MergeOptions(Math.max(1, settings.lanes().size()), settings.maxMemoryBytes(), r.chunkElements(),
                    r.copyTokenizer(), r.writeModelCard(), null);
            CompletableFuture<org.mergeengine.engine.Progress> result = new CompletableFuture<>();
            system.systemActorOf(ClusterMerge.create(new ClusterMerge.Job(s.id() + "@" + name, spec, staged, opts, service.engine().io(), s::progress, result, closed::get)),
                    "cluster-merge-" + s.id(), Props.empty());
            return result.whenComplete((p, e) -> planned.close());
        });
    }

    /** Leaves the cluster (this node's unfinished tasks go back to their coordinators) and stops. */
    @Override
    public void close() {
        if (closed.getAndSet(true)) return;
        lanes.tell(Stop.INSTANCE);
        if (ownsSystem) {
            system.terminate();
            try {
                system.getWhenTerminated().toCompletableFuture().get(60, java.util.concurrent.TimeUnit.SECONDS);
            } catch (Exception ignored) {
                // shutting down; nothing left to save
            }
        }
        service.close();
    }
}
