package org.mergeengine.hub;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.api.MergeService;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.config.MergeConfig;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.formats.DType;
import org.mergeengine.plan.PlanOptions;
import org.mergeengine.tools.SyntheticModel;

/** Models from a fake hub on 127.0.0.1, through the cache actor. */
class HubTest {
    @TempDir
    static Path models;
    @TempDir
    Path tmp;
    FakeHub hub;
    static final List<String> REPOS = List.of("org/base", "org/ft1", "org/ft2");

    @BeforeAll
    static void generate() throws Exception {
        SyntheticModel.Spec s = SyntheticModel.Spec.tiny();
        SyntheticModel.write(models.resolve("base"), s, DType.F32, 1, 1, 0, 0);
        SyntheticModel.write(models.resolve("ft1"), s, DType.F32, 1, 2, 0.2, 0);
        SyntheticModel.write(models.resolve("ft2"), s, DType.F32, 1, 3, 0.2, 60_000); // sharded, with an index
    }

    @BeforeEach
    void start() throws Exception {
        hub = new FakeHub();
        for (String r : REPOS) hub.add(r, models.resolve(r.substring(4)));
    }

    @AfterEach
    void stop() {
        hub.close();
    }

    HubSettings settings(Path cache, String token, boolean offline) {
        return new HubSettings(URI.create(hub.url()), token, cache, offline, Duration.ofSeconds(10), 3, Duration.ofMillis(10));
    }

    static MergeConfig cfg(String yaml) {
        return ConfigParser.parse(yaml);
    }

    static MergeOptions opts() {
        return MergeOptions.defaults().withWorkers(2);
    }

    static final String[] CONFIGS = {
        "merge_method: linear\nmodels:\n  - {model: M/base, parameters: {weight: 0.5}}\n  - {model: M/ft1, parameters: {weight: 0.5}}\n",
        "merge_method: ties\nbase_model: M/base\nmodels:\n  - {model: M/ft1, parameters: {weight: 1, density: 0.5}}\n  - {model: M/ft2, parameters: {weight: 1, density: 0.5}}\n",
        "merge_method: task_arithmetic\nbase_model: M/base\nmodels:\n  - {model: M/ft2, parameters: {weight: 0.7}}\n",
        "merge_method: slerp\nbase_model: M/base\nparameters: {t: 0.3}\nmodels:\n  - model: M/base\n  - model: M/ft2\n",
        "merge_method: dare_ties\nbase_model: M/base\nmodels:\n  - {model: M/ft1, parameters: {weight: 1, density: 0.6}}\n",
        "merge_method: breadcrumbs\nbase_model: M/base\nmodels:\n  - {model: M/ft1, parameters: {weight: 1, density: 0.8}}\n  - {model: M/ft2, parameters: {weight: 1, density: 0.8}}\n",
        "merge_method: model_stock\nbase_model: M/base\nmodels:\n  - model: M/ft1\n  - model: M/ft2\n",
        "merge_method: passthrough\nslices:\n  - sources: [{model: M/ft2, layer_range: [0, 2]}]\n  - sources: [{model: M/base, layer_range: [2, 4]}]\n",
    };

    static String hubConfig(int i) {
        return CONFIGS[i].replace("M/", "org/");
    }

    static String localConfig(int i, Path dir) {
        return CONFIGS[i].replace("M/", dir.toAbsolutePath() + "/");
    }

    @Test
    void eightConcurrentMergesDownloadEachFileOnce() throws Exception {
        Path cache = tmp.resolve("cache");
        try (MergeService svc = new MergeService(settings(cache, null, false))) {
            List<CompletableFuture<?>> all = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                all.add(svc.merge(cfg(hubConfig(i)), List.of(tmp), tmp.resolve("hub-" + i), PlanOptions.defaults(), opts()));
            }
            CompletableFuture.allOf(all.toArray(new CompletableFuture[0])).join();
            for (int i = 0; i < 8; i++) {
                svc.merge(cfg(localConfig(i, models)), List.of(tmp), tmp.resolve("local-" + i), PlanOptions.defaults(), opts()).join();
            }
        }
        for (String repo : REPOS) {
            assertEquals(1, hub.count("API " + repo), "the revision of " + repo + " is resolved once");
            for (String f : hub.repos.get(repo).files().keySet()) {
                assertEquals(1, hub.downloads(repo, f), repo + "/" + f + " is downloaded exactly once: " + hub.keys());
                assertTrue(hub.count("HEAD " + repo + "/" + f) <= 1, "one HEAD for " + repo + "/" + f);
                if (FakeHub.lfs(f)) {
                    String sha = FakeHub.sha256(hub.repos.get(repo).files().get(f));
                    assertTrue(hub.count("CDN " + sha + " range 0-7") <= 1, "the header is probed at most once");
                }
            }
        }
        for (int i = 0; i < 8; i++) {
            for (Path f : shards(tmp.resolve("local-" + i))) {
                assertArrayEquals(Files.readAllBytes(f), Files.readAllBytes(tmp.resolve("hub-" + i).resolve(f.getFileName())), "merge " + i);
            }
        }
        int before = hub.total();
        try (MergeService svc = new MergeService(settings(cache, null, false))) {
            svc.merge(cfg(hubConfig(1)), List.of(tmp), tmp.resolve("again"), PlanOptions.defaults(), opts()).join();
        }
        assertEquals(before, hub.total(), "a second run is served from the cache: " + hub.keys());
    }

    static List<Path> shards(Path dir) throws Exception {
        try (var s = Files.list(dir)) {
            return s.filter(p -> p.toString().endsWith(".safetensors")).toList();
        }
    }

    void mergeBase(Path cache, String name) {
        try (MergeService svc = new MergeService(settings(cache, null, false))) {
            svc.merge(cfg("merge_method: passthrough\nmodels:\n  - model: org/base\n"), List.of(tmp), tmp.resolve(name), PlanOptions.defaults(), opts()).join();
        }
    }

    byte[] blob(String repo) throws Exception {
        return hub.repos.get(repo).files().get("model.safetensors");
    }

    @Test
    void droppedConnectionsResumeAndIgnoredRangesRestart() throws Exception {
        String sha = FakeHub.sha256(blob("org/base"));
        hub.dropAfter.put(sha, 5000L);
        mergeBase(tmp.resolve("c1"), "o1");
        assertEquals(1, hub.count("CDN " + sha + " resume"), "the download resumed with Range: " + hub.keys());
        assertArrayEquals(blob("org/base"), Files.readAllBytes(tmp.resolve("o1/model.safetensors")));

        hub.ignoreRange = true;
        hub.dropAfter.put(sha, 7000L);
        mergeBase(tmp.resolve("c2"), "o2");
        assertArrayEquals(blob("org/base"), Files.readAllBytes(tmp.resolve("o2/model.safetensors")), "a server that ignores Range still gives the right bytes");
    }

    @Test
    void aBlobWithAWrongChecksumIsFetchedAgain() throws Exception {
        String sha = FakeHub.sha256(blob("org/base"));
        hub.corruptOnce.put(sha, true);
        mergeBase(tmp.resolve("c"), "o");
        assertEquals(2, hub.count("CDN " + sha + " full"), hub.keys().toString());
        assertArrayEquals(blob("org/base"), Files.readAllBytes(tmp.resolve("o/model.safetensors")));
    }

    @Test
    void aLeftoverIncompleteFileDoesNotBreakTheNextRun() throws Exception {
        Path cache = tmp.resolve("c");
        String sha = FakeHub.sha256(blob("org/base"));
        Path blobs = cache.resolve("models--org--base/blobs");
        Files.createDirectories(blobs);
        Files.write(blobs.resolve(sha + ".1234abcd.incomplete"), new byte[] {1, 2, 3});
        Files.write(blobs.resolve(sha + ".incomplete"), new byte[] {4, 5});
        mergeBase(cache, "o");
        assertArrayEquals(blob("org/base"), Files.readAllBytes(cache.resolve("models--org--base/blobs/" + sha)));
    }

    @Test
    void offlineWorksFromTheCacheAndFailsClearlyOtherwise() throws Exception {
        Path cache = tmp.resolve("c");
        mergeBase(cache, "online");
        int before = hub.total();
        try (MergeService svc = new MergeService(settings(cache, null, true))) {
            svc.merge(cfg("merge_method: passthrough\nmodels:\n  - model: org/base\n"), List.of(tmp), tmp.resolve("offline"), PlanOptions.defaults(), opts()).join();
            assertEquals(before, hub.total(), "offline makes no request");
            Exception e = assertThrows(RuntimeException.class, () -> svc.check(cfg("merge_method: passthrough\nmodels:\n  - model: org/ft1\n"),
                    List.of(tmp), PlanOptions.defaults()));
            assertTrue(e.getMessage().contains("org/ft1") && e.getMessage().contains("offline"), e.getMessage());
        }
    }

    @Test
    void aCacheLaidOutByHuggingfaceHubIsReusedWithZeroRequests() throws Exception {
        Path cache = tmp.resolve("py");
        for (String repo : REPOS) {
            FakeHub.Repo r = hub.repos.get(repo);
            Path rd = cache.resolve("models--" + repo.replace("/", "--"));
            Files.createDirectories(rd.resolve("refs"));
            Files.writeString(rd.resolve("refs/main"), r.commit());
            for (Map.Entry<String, byte[]> f : r.files().entrySet()) {
                String etag = FakeHub.lfs(f.getKey()) ? FakeHub.sha256(f.getValue()) : FakeHub.gitSha1(f.getValue());
                Path blob = rd.resolve("blobs").resolve(etag);
                Files.createDirectories(blob.getParent());
                Files.write(blob, f.getValue());
                Path pointer = rd.resolve("snapshots").resolve(r.commit()).resolve(f.getKey());
                Files.createDirectories(pointer.getParent());
                Files.createSymbolicLink(pointer, pointer.getParent().relativize(blob));
            }
        }
        try (MergeService svc = new MergeService(settings(cache, null, false))) {
            svc.merge(cfg(hubConfig(1)), List.of(tmp), tmp.resolve("o"), PlanOptions.defaults(), opts()).join();
        }
        assertEquals(0, hub.total(), "requests made: " + hub.keys());
    }

    @Test
    void theTokenGoesToTheHubOnlyAndIsNeverPrinted() throws Exception {
        String token = "hf_secretToken123";
        try (MergeService svc = new MergeService(settings(tmp.resolve("c"), token, false))) {
            svc.merge(cfg(hubConfig(0)), List.of(tmp), tmp.resolve("o"), PlanOptions.defaults(), opts()).join();
            assertFalse(svc.hub().toString().contains(token));
            Exception e = assertThrows(RuntimeException.class, () -> svc.check(cfg("merge_method: passthrough\nmodels:\n  - model: org/missing\n"),
                    List.of(tmp), PlanOptions.defaults()));
            assertFalse(e.getMessage().contains(token), e.getMessage());
            assertTrue(e.getMessage().contains("org/missing"), e.getMessage());
        }
        assertFalse(hub.hubAuthorization.isEmpty());
        assertTrue(hub.hubAuthorization.stream().allMatch(a -> a.equals("Bearer " + token)));
        assertTrue(hub.cdnAuthorization.isEmpty(), "no Authorization header on the CDN: " + hub.cdnAuthorization);
    }

    @Test
    void configErrorsAreFoundWithoutDownloadingWeights() throws Exception {
        Path holey = tmp.resolve("holey");
        org.mergeengine.ModelEdit.copy(models.resolve("ft1"), holey, (n, v) -> n.contains("layers.1.mlp.up_proj") ? null : v);
        hub.add("org/holey", holey);
        String[] bad = {
            "merge_method: linear\nmodels:\n  - {model: org/base, parameters: {weight: 1}}\n  - {model: org/holey, parameters: {weight: 1}}\n",
            "merge_method: passthrough\nslices:\n  - sources: [{model: org/base, layer_range: [0, 9]}]\n",
            "merge_method: dare-ties\nbase_model: org/base\nmodels:\n  - {model: org/ft1, parameters: {weight: 1}}\n",
        };
        String[] says = {"model.layers.1.mlp.up_proj.weight", "layer_range", "dare_ties"};
        try (MergeService svc = new MergeService(settings(tmp.resolve("c"), null, false))) {
            for (int i = 0; i < bad.length; i++) {
                int k = i;
                Exception e2 = assertThrows(RuntimeException.class,
                        () -> svc.merge(ConfigParser.parse(bad[k]), List.of(tmp), tmp.resolve("bad" + k), PlanOptions.defaults(), opts()).join());
                String msg = e2.getCause() != null ? e2.getCause().getMessage() : e2.getMessage();
                assertTrue(msg.contains(says[k]), msg);
                assertFalse(Files.exists(tmp.resolve("bad" + k)));
            }
        }
        for (String repo : List.of("org/base", "org/ft1", "org/holey")) {
            for (String f : hub.repos.get(repo).files().keySet()) {
                if (FakeHub.lfs(f)) assertEquals(0, hub.downloads(repo, f), "no weight download for " + repo + "/" + f + ": " + hub.keys());
            }
        }
    }

    @Test
    void namesFromConfigsOrServersCannotLeaveTheCache() {
        for (String f : new String[] {"../x", "/etc/passwd", "a\\b", "a/../../b", "", "c:/x"}) {
            assertThrows(HubException.class, () -> RepoPaths.checkFile("org/r", f), f);
        }
        for (String r : new String[] {"../x", "org/../x", "a/b/c", "/abs", "org/"}) assertFalse(RepoPaths.isRepoId(r), r);
        assertTrue(RepoPaths.isRepoId("meta-llama/Llama-3.1-8B"));
        assertThrows(HubException.class, () -> new HubCache(tmp).file("org/r", "0123456789012345678901234567890123456789", "../../../etc"));
    }

    @Test
    void cacheCommandsListVerifyAndPrune() throws Exception {
        Path cache = tmp.resolve("c");
        mergeBase(cache, "o");
        org.mergeengine.TestSupport.Result ls = org.mergeengine.TestSupport.cli("cache", "ls", "--cache-dir", cache.toString());
        assertEquals(0, ls.exitCode(), ls.stderr());
        assertTrue(ls.stdout().contains("org/base") && ls.stdout().contains("main="), ls.stdout());
        assertEquals(0, org.mergeengine.TestSupport.cli("cache", "verify", "--cache-dir", cache.toString()).exitCode());
        String sha = FakeHub.sha256(blob("org/base"));
        Path blob = cache.resolve("models--org--base/blobs/" + sha);
        byte[] good = Files.readAllBytes(blob);
        byte[] bad = good.clone();
        bad[100] ^= 1;
        Files.write(blob, bad);
        org.mergeengine.TestSupport.Result v = org.mergeengine.TestSupport.cli("cache", "verify", "--cache-dir", cache.toString());
        assertEquals(2, v.exitCode());
        assertTrue(v.stdout().contains("CORRUPT org/base blob " + sha), v.stdout());
        Files.write(blob, good);
        Path orphan = cache.resolve("models--org--base/blobs/" + "ab".repeat(32));
        Files.write(orphan, new byte[10]);
        assertEquals(0, org.mergeengine.TestSupport.cli("cache", "prune", "--cache-dir", cache.toString()).exitCode());
        assertFalse(Files.exists(orphan));
        assertTrue(Files.exists(blob), "referenced blobs stay");
    }

    @Test
    void aMultiStageMergeFetchesEachFileOnceAndNothingWhenRunAgain() throws Exception {
        String text = org.mergeengine.multi.MultiTestSupport.dag("org/");
        Path cache = tmp.resolve("c");
        java.util.function.Supplier<List<org.mergeengine.multi.MultiRunner.StageResult>> run = () -> {
            try (MergeService svc = new MergeService(settings(cache, null, false))) {
                org.mergeengine.multi.MultiConfig mc = org.mergeengine.multi.MultiConfig.parse(text, tmp.resolve("stages"), tmp.resolve("final"));
                return new org.mergeengine.multi.MultiRunner(svc, mc, List.of(tmp), PlanOptions.defaults(), opts(), false, l -> { }).run().join();
            }
        };
        run.get();
        for (String repo : REPOS) {
            assertEquals(1, hub.count("API " + repo));
            for (String f : hub.repos.get(repo).files().keySet()) {
                assertEquals(1, hub.downloads(repo, f), repo + "/" + f + ": " + hub.keys());
                assertTrue(hub.count("HEAD " + repo + "/" + f) <= 1);
            }
        }
        int before = hub.total();
        List<org.mergeengine.multi.MultiRunner.StageResult> again = run.get();
        assertEquals(before, hub.total(), "the rerun makes no request: " + hub.keys());
        assertTrue(again.stream().allMatch(r -> r.state() == org.mergeengine.multi.MultiRunner.State.SKIPPED), again.toString());
    }

    @Test
    void aDownloadThatCannotFitIsRefusedNamingBothSizes() throws Exception {
        Path big = tmp.resolve("big");
        SyntheticModel.write(big, new SyntheticModel.Spec(64, 128, 2, 4000, 4, 2, false), DType.F32, 1, 9, 0, 0);
        hub.add("org/big", big);
        Path small = Files.createDirectories(tmp.resolve("small-cache"));
        Process mount = new ProcessBuilder("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small.toString()).redirectErrorStream(true).start();
        org.junit.jupiter.api.Assumptions.assumeTrue(mount.waitFor() == 0, "this machine does not let the test mount a 1 MB tmpfs");
        try (MergeService svc = new MergeService(settings(small, null, false))) {
            Exception e = assertThrows(RuntimeException.class, () -> svc.merge(cfg("merge_method: passthrough\nmodels:\n  - model: org/big\n"),
                    List.of(tmp), tmp.resolve("o"), PlanOptions.defaults(), opts()).join());
            String msg = e.getCause() != null ? e.getCause().getMessage() : e.getMessage();
            long size = hub.repos.get("org/big").files().get("model.safetensors").length;
            assertTrue(msg.contains("not enough disk space") && msg.contains(Long.toString(size)) && msg.contains("are free"), msg);
            assertEquals(0, hub.downloads("org/big", "model.safetensors"), "nothing was downloaded");
        } finally {
            new ProcessBuilder("umount", small.toString()).start().waitFor();
        }
    }

    @Test
    void twoProcessesSharingACacheDownloadEachBlobOnce() throws Exception {
        Path cache = tmp.resolve("shared-cache");
        hub.slowFullDownloads = 1500; // both processes reach the downloads while the other's are in flight
        Path cfg = Files.writeString(tmp.resolve("p.yaml"), "merge_method: linear\nmodels:\n  - {model: org/base, parameters: {weight: 1}}\n"
                + "  - {model: org/ft2, parameters: {weight: 1}}\n");
        String java = ProcessHandle.current().info().command().orElse("java");
        List<Process> ps = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            ProcessBuilder pb = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), "org.mergeengine.cli.Main",
                    cfg.toString(), tmp.resolve("proc-" + i).toString(), "--quiet", "--cache-dir", cache.toString());
            pb.environment().put("HF_ENDPOINT", hub.url());
            pb.environment().remove("HF_TOKEN");
            pb.environment().remove("HF_HUB_OFFLINE");
            ps.add(pb.redirectErrorStream(true).redirectOutput(tmp.resolve("proc-" + i + ".log").toFile()).start());
        }
        for (int i = 0; i < 2; i++) assertEquals(0, ps.get(i).waitFor(), Files.readString(tmp.resolve("proc-" + i + ".log")));
        for (String repo : List.of("org/base", "org/ft2")) {
            for (String f : hub.repos.get(repo).files().keySet()) {
                if (FakeHub.lfs(f)) assertEquals(1, hub.downloads(repo, f), repo + "/" + f + " is downloaded once across both processes: " + hub.keys());
            }
        }
        assertArrayEquals(Files.readAllBytes(tmp.resolve("proc-0/model.safetensors")), Files.readAllBytes(tmp.resolve("proc-1/model.safetensors")));
    }
}
