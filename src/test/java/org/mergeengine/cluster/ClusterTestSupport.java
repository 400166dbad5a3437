package org.mergeengine.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.typesafe.config.ConfigFactory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.mergeengine.api.MergeService;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.engine.Device;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.formats.DType;
import org.mergeengine.hub.HubSettings;
import org.mergeengine.plan.PlanOptions;
import org.mergeengine.tools.SyntheticModel;

/** Nodes on 127.0.0.1, models big enough for a few dozen tasks, and a single-node reference merge. */
final class ClusterTestSupport {
    private ClusterTestSupport() {}

    static final int CHUNK = 65536;

    /** The local cluster's TLS key pair, made once per test JVM (not in the user's cache). */
    static final Path TLS_DIR = tlsDir();

    private static Path tlsDir() {
        try {
            Path d = Files.createTempDirectory("merge-engine-tls");
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                try (Stream<Path> s = Files.walk(d)) {
                    s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
                } catch (IOException ignored) {
                    // a temporary folder: the system cleans it eventually
                }
            }));
            return d.resolve("local");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** SBR and failure detection tuned down so that a lost node is noticed in seconds. */
    static final com.typesafe.config.Config FAST = ConfigFactory.parseString("""
            pekko.cluster.split-brain-resolver.stable-after = 2s
            pekko.cluster.failure-detector.acceptable-heartbeat-pause = 2s
            pekko.cluster.failure-detector.heartbeat-interval = 500ms
            pekko.coordinated-shutdown.phases.cluster-exiting.timeout = 5s
            """).withFallback(ConfigFactory.parseMap(Map.of("merge-engine.cluster.tls.local-dir", TLS_DIR.toString())));

    static MergeNode node(Path cache, List<String> seeds, Duration perTask, int lanes, String tag) {
        List<Device> l = new ArrayList<>();
        for (int i = 0; i < lanes; i++) l.add(Device.simulated(tag + i, perTask));
        MergeNode.Settings s = MergeNode.Settings.local(lanes, seeds).withLanes(l).withExtra(FAST)
                .withHub(HubSettings.fromEnvironment(java.util.Map.of(), cache, true));
        return MergeNode.start(s);
    }

    static String writeModels(Path dir) throws Exception {
        SyntheticModel.Spec spec = new SyntheticModel.Spec(256, 704, 6, 8000, 4, 2, false);
        SyntheticModel.write(dir.resolve("base"), spec, DType.BF16, 1, 1, 0, 0);
        SyntheticModel.write(dir.resolve("ft1"), spec, DType.BF16, 1, 2, 0.1, 0);
        SyntheticModel.write(dir.resolve("ft2"), spec, DType.BF16, 1, 3, 0.1, 0);
        return "merge_method: ties\nbase_model: base\nmodels:\n  - model: ft1\n    parameters: {weight: 0.6, density: 0.5}\n"
                + "  - model: ft2\n    parameters: {weight: 0.4, density: 0.7}\n";
    }

    static MergeNode.Request request(String yaml, Path dir, Path out) {
        return MergeNode.Request.of(yaml, dir, out).withChunkElements(CHUNK).withPlanOptions(new PlanOptions(PlanOptions.DEFAULT_SEED, 4_000_000, false));
    }

    /** The same merge on one node without a cluster. */
    static Path reference(String yaml, Path dir) {
        Path ref = dir.resolve("reference");
        try (MergeService s = new MergeService(HubSettings.fromEnvironment(java.util.Map.of(), dir.resolve("ref-cache"), true))) {
            s.merge(ConfigParser.parse(yaml), List.of(dir), ref, new PlanOptions(PlanOptions.DEFAULT_SEED, 4_000_000, false),
                    MergeOptions.defaults().withWorkers(1).withChunkElements(CHUNK)).join();
        }
        return ref;
    }

    static void assertSameModel(Path expected, Path actual) throws Exception {
        List<Path> e = files(expected), a = files(actual);
        assertEquals(e.stream().map(Path::getFileName).toList(), a.stream().map(Path::getFileName).toList());
        assertEquals(true, e.size() > 1, "the test merge is sharded");
        for (int i = 0; i < e.size(); i++) assertArrayEquals(Files.readAllBytes(e.get(i)), Files.readAllBytes(a.get(i)), e.get(i).getFileName().toString());
    }

    static List<Path> files(Path d) throws Exception {
        try (Stream<Path> s = Files.list(d)) {
            return s.filter(p -> p.getFileName().toString().endsWith(".safetensors") || p.getFileName().toString().endsWith(".index.json")
                    || p.getFileName().toString().equals("config.json")).sorted().toList();
        }
    }

    static int tasksOn(org.mergeengine.engine.Progress p, MergeNode n) {
        String prefix = n.address().substring(n.address().indexOf('@') + 1) + "/";
        return p.tasksByLane().entrySet().stream().filter(e -> e.getKey().startsWith(prefix)).mapToInt(java.util.Map.Entry::getValue).sum();
    }
}
