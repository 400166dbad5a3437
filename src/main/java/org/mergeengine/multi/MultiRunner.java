package org.mergeengine.multi;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.mergeengine.api.MergeService;
import org.mergeengine.config.ModelRef;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.engine.OutputFolder;
import org.mergeengine.formats.Json;
import org.mergeengine.hub.RepoPaths;
import org.mergeengine.plan.LocalModelResolver;
import org.mergeengine.plan.PlanOptions;

/**
 * Runs the stages of a multi-stage file as a DAG on one merge service: a stage starts as soon as
 * the stages it uses are complete, so independent stages run at the same time, under one memory
 * budget and one cache actor. A stage whose completion marker holds the same stage hash (its
 * config, and the identities of its inputs: hub commits, local files, upstream stage hashes) is
 * skipped; anything that changed reruns, and so does everything downstream of it.
 */
public final class MultiRunner {
    public enum State { QUEUED, RUNNING, DONE, SKIPPED, FAILED }

    public record StageResult(String label, State state, String hash, long startNanos, long endNanos) {
        public double seconds() {
            return (endNanos - startNanos) / 1e9;
        }
    }

    private final MergeService service;
    private final MultiConfig multi;
    private final List<Path> searchDirs;
    private final PlanOptions planOpts;
    private final MergeOptions opts;
    private final boolean force;
    private final Consumer<String> log;

    public MultiRunner(MergeService service, MultiConfig multi, List<Path> searchDirs, PlanOptions planOpts, MergeOptions opts,
                       boolean force, Consumer<String> log) {
        this.service = service;
        this.multi = multi;
        this.searchDirs = searchDirs;
        this.planOpts = planOpts;
        this.opts = opts;
        this.force = force;
        this.log = log;
    }

    /** Runs every stage; completes with their results in file order, or with the first failure. */
    public CompletableFuture<List<StageResult>> run() {
        Map<String, CompletableFuture<StageResult>> byName = new LinkedHashMap<>();
        List<CompletableFuture<StageResult>> all = new ArrayList<>();
        for (MultiConfig.Stage s : multi.stages()) log.accept(s.label() + ": queued");
        for (MultiConfig.Stage s : multi.stages()) all.add(future(s, byName));
        return CompletableFuture.allOf(all.toArray(new CompletableFuture[0]))
                .thenApply(v -> all.stream().map(CompletableFuture::join).toList());
    }

    private CompletableFuture<StageResult> future(MultiConfig.Stage s, Map<String, CompletableFuture<StageResult>> byName) {
        if (s.name() != null && byName.containsKey(s.name())) return byName.get(s.name());
        List<CompletableFuture<StageResult>> deps = new ArrayList<>();
        for (String d : s.dependsOn()) {
            MultiConfig.Stage ds = multi.stages().stream().filter(x -> d.equals(x.name())).findFirst().orElseThrow();
            deps.add(future(ds, byName));
        }
        CompletableFuture<StageResult> f = CompletableFuture.allOf(deps.toArray(new CompletableFuture[0]))
                .thenCompose(v -> {
                    Map<String, String> upstream = new TreeMap<>();
                    for (CompletableFuture<StageResult> d : deps) upstream.put(d.join().label(), d.join().hash());
                    return runStage(s, upstream);
                });
        if (s.name() != null) byName.put(s.name(), f);
        return f;
    }

    private CompletableFuture<StageResult> runStage(MultiConfig.Stage s, Map<String, String> upstream) {
        long t0 = System.nanoTime();
        String hash = stageHash(s, upstream);
        if (!force && hash.equals(markerHash(s.output()))) {
            log.accept(s.label() + ": skipped (up to date)");
            return CompletableFuture.completedFuture(new StageResult(s.label(), State.SKIPPED, hash, t0, System.nanoTime()));
        }
        if (!s.isFinal() && Files.exists(s.output()) && markerHash(s.output()) == null && !Files.exists(s.output().resolve(OutputFolder.MARKER))) {
            // An intermediate folder without its marker is a stage that never finished: the run owns it.
            log.accept(s.label() + ": removing the unfinished output " + s.output());
            OutputFolder.deleteTree(s.output());
        }
        log.accept(s.label() + ": running");
        MergeOptions o = opts.withStageHash(hash).withProgress(p -> {
            if (p.tensorsDone() == p.tensorsTotal() || p.tensorsDone() % Math.max(1, p.tensorsTotal() / 4) == 0) {
                log.accept(String.format(Locale.ROOT, "%s: %d/%d tensors", s.label(), p.tensorsDone(), p.tensorsTotal()));
            }
        });
        return service.merge(s.config(), searchDirs, s.output(), planOpts, o).handle((p, err) -> {
            long t1 = System.nanoTime();
            if (err != null) {
                log.accept(s.label() + ": failed");
                Throwable c = err instanceof java.util.concurrent.CompletionException && err.getCause() != null ? err.getCause() : err;
                throw c instanceof RuntimeException re ? re : new java.util.concurrent.CompletionException(c);
            }
            log.accept(String.format(Locale.ROOT, "%s: done in %.1fs", s.label(), (t1 - t0) / 1e9));
            return new StageResult(s.label(), State.DONE, hash, t0, t1);
        });
    }

    static String markerHash(Path out) {
        Path m = out.resolve(OutputFolder.MARKER);
        if (!Files.isRegularFile(m)) return null;
        try {
            JsonNode n = Json.read(m);
            return n.path("stage_hash").asText(null);
        } catch (RuntimeException e) {
            return null;
        }
    }

    /** The stage's config (references rewritten) and the identity of everything it reads. */
    String stageHash(MultiConfig.Stage s, Map<String, String> upstream) {
        StringBuilder sb = new StringBuilder(s.canonicalYaml()).append('\n');
        upstream.forEach((k, v) -> sb.append("stage ").append(k).append(' ').append(v).append('\n'));
        LocalModelResolver local = new LocalModelResolver(searchDirs);
        for (ModelRef r : s.config().referencedModels()) {
            sb.append(r).append(' ').append(identity(local, new ModelRef(r.path(), r.revision(), null, null))).append('\n');
            if (r.hasLora()) sb.append(identity(local, new ModelRef(r.loraPath(), r.loraRevision(), null, null))).append('\n');
        }
        return OutputFolder.sha256(sb.toString());
    }

    private String identity(LocalModelResolver local, ModelRef ref) {
        Path dir = local.locate(ref);
        if (dir != null) {
            String stage = markerHash(dir);
            return stage != null ? "stage:" + stage : "local:" + folderHash(dir);
        }
        if (RepoPaths.isRepoId(ref.path())) return "hub:" + service.commitOf(ref.path(), ref.revision());
        return "missing";
    }

    /**
     * A local folder's identity: the bytes of its small files (config, index, tokenizer) and the
     * name, size and modification time of its weight files (hashing gigabytes on every run would
     * cost more than it saves).
     */
    static String folderHash(Path dir) {
        try (Stream<Path> s = Files.list(dir)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            for (Path f : s.sorted().toList()) {
                if (!Files.isRegularFile(f)) continue;
                String n = f.getFileName().toString();
                md.update(n.getBytes(java.nio.charset.StandardCharsets.UTF_8));
                if (Files.size(f) < (1 << 20) && !n.endsWith(".safetensors") && !n.endsWith(".bin")) {
                    md.update(Files.readAllBytes(f));
                } else {
                    md.update((Files.size(f) + ":" + Files.getLastModifiedTime(f).toMillis()).getBytes(java.nio.charset.StandardCharsets.UTF_8));
                }
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (IOException | java.security.NoSuchAlgorithmException e) {
            return "unreadable";
        }
    }
}
