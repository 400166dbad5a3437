package org.mergeengine.hub;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.ModelRef;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.LoraAdapter;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.SafetensorsFile;
import org.mergeengine.plan.LocalModelResolver;
import org.mergeengine.plan.ModelResolver;
import org.mergeengine.plan.OutputFiles;

/**
 * Resolves model references: local folders directly, anything else through the cache actor as a
 * hub repository. In {@link Mode#HEADERS} only the small files (config, index, tokenizer, adapters)
 * are downloaded and each weight shard is known by its header (two Range requests), so a plan is
 * checked completely before any weight is fetched; {@link Mode#FULL} downloads the weights.
 */
public final class HubModelResolver implements ModelResolver {
    public enum Mode { HEADERS, FULL }

    static final List<String> SMALL = List.of("config.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json",
            "tokenizer.model", "added_tokens.json", "merges.txt", "vocab.json", "chat_template.jinja", "chat_template.json", "generation_config.json",
            "preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json");

    private final LocalModelResolver local;
    private final ActorRef<CacheActor.Command> cache;
    private final ActorSystem<?> system;
    private final Mode mode;
    private final Map<ModelRef, ModelFolder> resolved = new LinkedHashMap<>();
    private final Map<String, LoraAdapter> adapters = new LinkedHashMap<>();
    private final Duration timeout = Duration.ofHours(24);

    public HubModelResolver(LocalModelResolver local, ActorRef<CacheActor.Command> cache, ActorSystem<?> system, Path cacheRoot, Mode mode) {
        this.cacheRoot = cacheRoot;
        this.local = local;
        this.cache = cache;
        this.system = system;
        this.mode = mode;
    }

    @Override
    public synchronized ModelFolder resolve(ModelRef ref, String yamlPath) {
        ModelFolder have = resolved.get(ref);
        if (have != null) return have;
        local.checkPath(ref, yamlPath);
        ModelFolder m;
        if (ref.hasLora()) {
            ModelFolder base = resolve(ref.withoutLora(), yamlPath);
            ModelRef lr = new ModelRef(ref.loraPath(), ref.loraRevision(), null, null);
            Path dir = local.locate(lr);
            boolean hub = dir == null;
            if (hub) dir = hubFolder(lr, yamlPath, true);
            Path adapterDir = dir, root = hub ? new HubCache(cacheRoot).repoDir(lr.path()) : dir;
            LoraAdapter a = adapters.computeIfAbsent(adapterDir.toString(), k -> LoraAdapter.open(adapterDir, root));
            m = base.withAdapter(a);
        } else if (local.locate(ref) != null) {
            m = local.resolve(ref, yamlPath);
        } else {
            m = hubModel(ref, yamlPath);
        }
        resolved.put(ref, m);
        return m;
    }

    private ModelFolder hubModel(ModelRef ref, String yamlPath) {
        String repo = repo(ref, yamlPath);
        HubClient.RepoInfo info;
        try {
            info = ask(r -> new CacheActor.Resolve(repo, ref.revision(), r));
        } catch (HubException e) {
            throw new ConfigException(yamlPath, "'" + repo + "' was taken as a hub repository, as no local folder has that name; " + e.getMessage());
        }
        Path snap = fetchSmall(repo, info);
        if (java.nio.file.Files.exists(snap.resolve("config.json"))) {
            // remote code named by auto_map travels with the model (plan/OutputFiles copies it)
            for (String f : OutputFiles.autoMapFiles(Json.readObject(snap.resolve("config.json")))) {
                if (info.files().contains(f)) {
                    RepoPaths.checkFile(repo, f);
                    fetch(repo, info.commit(), f);
                }
            }
        }
        Map<String, String> weightMap = null;
        List<String> shards = new ArrayList<>();
        if (info.files().contains("model.safetensors.index.json")) {
            Path index = fetch(repo, info.commit(), "model.safetensors.index.json");
            weightMap = ModelFolder.readIndex(index);
            shards.addAll(new java.util.TreeSet<>(weightMap.values()));
        } else if (info.files().contains("model.safetensors")) {
            shards.add("model.safetensors");
        } else if (info.files().stream().anyMatch(f -> f.startsWith("pytorch_model") && f.endsWith(".bin"))) {
            throw new ConfigException(yamlPath, repo + " has only PyTorch .bin weights, which this version cannot read yet");
        } else {
            throw new ConfigException(yamlPath, repo + " has no model.safetensors or model.safetensors.index.json at commit " + info.commit());
        }
        for (String s : shards) RepoPaths.checkFile(repo, s);
        if (mode == Mode.FULL) {
            List<CompletionStage<Path>> all = new ArrayList<>();
            for (String s : shards) all.add(askAsync(r -> new CacheActor.Fetch(repo, info.commit(), s, r)));
            for (CompletionStage<Path> f : all) join(f);
            return ModelFolder.open(snap, new HubCache(cacheRoot).repoDir(repo));
        }
        Map<String, SafetensorsFile> headers = new LinkedHashMap<>();
        List<CompletionStage<CacheActor.HeaderBytes>> pending = new ArrayList<>();
        for (String s : shards) pending.add(askAsync(r -> new CacheActor.Header(repo, info.commit(), s, r)));
        for (int i = 0; i < shards.size(); i++) {
            CacheActor.HeaderBytes h = join(pending.get(i));
            headers.put(shards.get(i), SafetensorsFile.fromHeader(Path.of(repo, shards.get(i)), h.bytes(), h.fileSize()));
        }
        Path root = new HubCache(cacheRoot).repoDir(repo);
        Path cfg = ModelFolder.resolveInside(snap, "config.json", root);
        return ModelFolder.fromHeaders(snap, root, cfg != null ? Json.readExactObject(cfg) : null, weightMap, headers);
    }

    /** A hub folder whose files are all small enough to fetch whole (adapters). */
    private Path hubFolder(ModelRef ref, String yamlPath, boolean adapter) {
        String repo = repo(ref, yamlPath);
        HubClient.RepoInfo info = ask(r -> new CacheActor.Resolve(repo, ref.revision(), r));
        Path snap = fetchSmall(repo, info);
        for (String f : List.of("adapter_config.json", "adapter_model.safetensors")) {
            if (info.files().contains(f)) fetch(repo, info.commit(), f);
        }
        return snap;
    }

    private Path fetchSmall(String repo, HubClient.RepoInfo info) {
        List<CompletionStage<Path>> all = new ArrayList<>();
        for (String f : SMALL) if (info.files().contains(f)) all.add(askAsync(r -> new CacheActor.Fetch(repo, info.commit(), f, r)));
        for (CompletionStage<Path> f : all) join(f);
        return new HubCache(cacheRoot).snapshot(repo, info.commit());
    }

    private final Path cacheRoot;

    private Path fetch(String repo, String commit, String file) {
        return ask(r -> new CacheActor.Fetch(repo, commit, file, r));
    }

    private static String repo(ModelRef ref, String yamlPath) {
        if (!RepoPaths.isRepoId(ref.path())) {
            throw new ConfigException(yamlPath, "'" + ref.path() + "' is neither a local folder nor a hub repository id (org/name)");
        }
        return ref.path();
    }

    private <T> T ask(java.util.function.Function<ActorRef<org.apache.pekko.pattern.StatusReply<T>>, CacheActor.Command> msg) {
        return join(askAsync(msg));
    }

    private <T> CompletionStage<T> askAsync(java.util.function.Function<ActorRef<org.apache.pekko.pattern.StatusReply<T>>, CacheActor.Command> msg) {
        return AskPattern.askWithStatus(cache, msg::apply, timeout, system.scheduler());
    }

    private static <T> T join(CompletionStage<T> f) {
        try {
            return f.toCompletableFuture().join();
        } catch (java.util.concurrent.CompletionException e) {
            Throwable c = e.getCause();
            if (c instanceof org.apache.pekko.pattern.StatusReply.ErrorMessage em) throw new HubException(em.getMessage());
            if (c instanceof RuntimeException re) throw re;
            throw new HubException(String.valueOf(c), c);
        }
    }

    @Override
    public synchronized void close() {
        adapters.values().forEach(LoraAdapter::close);
        resolved.values().forEach(ModelFolder::close);
        local.close();
    }
}
