package org.mergeengine.cli;

import com.typesafe.config.ConfigFactory;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import org.mergeengine.MergeException;
import org.mergeengine.cluster.HttpFrontend;
import org.mergeengine.cluster.MergeNode;
import org.mergeengine.engine.Device;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.hub.HubSettings;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code node --host H --port P --seed-nodes pekko://merge-engine@H1:P1,...}: a cluster member that runs until stopped. */
@Command(name = "node", mixinStandardHelpOptions = true,
        description = "Runs a cluster node: its worker lanes take tasks of merges submitted anywhere in the cluster.")
final class NodeCommand implements Callable<Integer> {
    @Option(names = "--host", paramLabel = "HOST", description = "address other nodes reach this one at (default 127.0.0.1)")
    String host = "127.0.0.1";

    @Option(names = "--port", paramLabel = "PORT", description = "cluster port (default 2552; 0: any free port)")
    int port = 2552;

    @Option(names = "--seed-nodes", paramLabel = "ADDRS", split = ",",
            description = "nodes to join, e.g. pekko://merge-engine@10.0.0.1:2552 (none: this node starts a cluster)")
    List<String> seeds = new ArrayList<>();

    @Option(names = {"--workers", "-j"}, paramLabel = "N", description = "worker lanes on this node (default: number of CPUs; 0: coordinate only)")
    Integer workers;

    @Option(names = "--http-port", paramLabel = "PORT", description = "serve the HTTP interface on this port (0: any free port)")
    Integer httpPort;

    @Option(names = "--http-host", paramLabel = "HOST", description = "address the HTTP interface binds to (default 127.0.0.1)")
    String httpHost = "127.0.0.1";

    @Option(names = "--http-token-file", paramLabel = "FILE",
            description = "where the HTTP token is written, readable by you only ({port}: the HTTP port; default ~/.cache/merge-engine/http-{port}.token). "
                    + "The token is MERGE_ENGINE_HTTP_TOKEN if set, else made at random")
    Path httpTokenFile;

    @Option(names = "--http-allowed-hosts", paramLabel = "NAMES", split = ",",
            description = "host names clients may use for this node besides its bound address (the Host header; others are refused)")
    List<String> httpAllowedHosts = new ArrayList<>();

    @Option(names = "--http-allowed-origins", paramLabel = "ORIGINS", split = ",",
            description = "web origins (https://host[:port]) whose pages may call the HTTP interface; none by default")
    List<String> httpAllowedOrigins = new ArrayList<>();

    @Option(names = "--tls-key-store", paramLabel = "FILE", description = "PKCS12 key store with this node's key and certificate (cluster TLS)")
    Path tlsKeyStore;

    @Option(names = "--tls-trust-store", paramLabel = "FILE", description = "PKCS12 trust store with the certificates (or CA) of all nodes")
    Path tlsTrustStore;

    @Option(names = "--tls-password-file", paramLabel = "FILE", description = "file holding the password of both stores (else MERGE_ENGINE_TLS_PASSWORD)")
    Path tlsPasswordFile;

    @Option(names = "--max-memory", paramLabel = "SIZE", description = "budget for tensor data on this node (default: half the JVM heap)")
    String maxMemory;

    @Option(names = "--max-merges", paramLabel = "N", description = "merges coordinated by this node at once; more queue (default 1)")
    int maxMerges = 1;

    @Option(names = "--cache-dir", paramLabel = "DIR", description = "this node's hub cache (default: HF_HUB_CACHE, else HF_HOME/hub)")
    Path cacheDir;

    @Option(names = "--offline", description = "use the hub cache only, no network")
    boolean offline;

    @Option(names = "--lane-delay-ms", hidden = true, description = "slows every task down (tests of nodes lost mid-merge)")
    long laneDelayMs;

    private final PrintStream out;

    NodeCommand(PrintStream out) {
        this.out = out;
    }

    @Override
    public Integer call() throws Exception {
        if (workers != null && workers < 0) throw MergeException.user("--workers must be 0 or more");
        if (maxMerges < 1) throw MergeException.user("--max-merges must be at least 1");
        long budget;
        try {
            budget = maxMemory == null ? MergeOptions.defaultBudget() : Sizes.parse(maxMemory);
        } catch (IllegalArgumentException e) {
            throw MergeException.user(e.getMessage());
        }
        int n = workers != null ? workers : Runtime.getRuntime().availableProcessors();
        List<Device> lanes = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            lanes.add(laneDelayMs > 0 ? Device.simulated("cpu-" + i, java.time.Duration.ofMillis(laneDelayMs)) : Device.cpu(i));
        }
        Map<String, Object> tls = new HashMap<>();
        if (tlsKeyStore != null) tls.put("merge-engine.cluster.tls.key-store", tlsKeyStore.toAbsolutePath().toString());
        if (tlsTrustStore != null) tls.put("merge-engine.cluster.tls.trust-store", tlsTrustStore.toAbsolutePath().toString());
        if (tlsPasswordFile != null) tls.put("merge-engine.cluster.tls.password-file", tlsPasswordFile.toAbsolutePath().toString());
        MergeNode.Settings s = new MergeNode.Settings(host, port, seeds, lanes, budget, HubSettings.fromEnvironment(System.getenv(), cacheDir, offline),
                maxMerges, ConfigFactory.parseMap(tls));
        MergeNode node = MergeNode.start(s);
        HttpFrontend http;
        try {
            http = httpPort == null ? null : HttpFrontend.start(node, HttpFrontend.Settings.of(httpHost, httpPort)
                    .withToken(System.getenv("MERGE_ENGINE_HTTP_TOKEN"), httpTokenFile != null ? httpTokenFile : defaultTokenFile())
                    .withAllowed(httpAllowedHosts, httpAllowedOrigins));
        } catch (RuntimeException e) {
            node.close();
            throw e;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        AtomicInteger exit = new AtomicInteger();
        Thread hook = new Thread(() -> {
            // SIGTERM or Ctrl-C: leave the cluster so that coordinators requeue this node's tasks at once.
            if (http != null) http.close();
            node.close();
            stopped.countDown();
        }, "merge-node-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        node.onRemoved(() -> {
            // A removed member cannot rejoin with this actor system: exit, and let a supervisor start a fresh node.
            exit.set(REMOVED);
            stopped.countDown();
        });
        out.println("node " + node.address() + " is up with " + n + " worker lane(s); members: " + String.join(", ", node.members()));
        if (http != null) out.println("HTTP on http://" + httpHost + ":" + http.port() + "/merges (token in " + http.tokenFile() + ")");
        out.flush();
        stopped.await();
        if (exit.get() == REMOVED) {
            System.err.println("error: " + node.state());
            System.err.flush();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException e) {
                // already shutting down
            }
            if (http != null) http.close();
            node.close();
        }
        return exit.get();
    }

    /** The exit status of a node the cluster removed. */
    static final int REMOVED = 3;

    private static Path defaultTokenFile() {
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path cache = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
        return cache.resolve("merge-engine").resolve("http-{port}.token");
    }
}
