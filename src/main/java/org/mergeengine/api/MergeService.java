package org.mergeengine.api;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Props;
import org.mergeengine.config.MergeConfig;
import org.mergeengine.engine.MergeEngine;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.engine.Progress;
import org.mergeengine.hub.CacheActor;
import org.mergeengine.hub.HubClient;
import org.mergeengine.hub.HubModelResolver;
import org.mergeengine.hub.HubSettings;
import org.mergeengine.plan.LocalModelResolver;
import org.mergeengine.plan.MergePlan;
import org.mergeengine.plan.PlanOptions;
import org.mergeengine.plan.Planner;

/**
 * Runs merges in one process: one actor system, one cache actor for every hub download, any
 * number of merges at once. A merge is planned twice: first from headers alone (config files,
 * indexes and safetensors headers fetched by Range requests), so every config or input mistake is
 * reported before a weight is downloaded; then with the weights in the cache.
 */
public final class MergeService implements AutoCloseable {
    private final MergeEngine engine;
    private final HubSettings hub;
    private final ActorRef<CacheActor.Command> cache;
    private final ExecutorService hubIo;
    private static final AtomicInteger CACHES = new AtomicInteger();

    public MergeService(HubSettings hub) {
        this(new MergeEngine(), hub);
    }

    public MergeService(MergeEngine engine, HubSettings hub) {
        this.engine = engine;
        this.hub = hub;
        this.hubIo = org.mergeengine.engine.Threads.daemonPool("hub-io");
        this.cache = engine.system().systemActorOf(CacheActor.create(new HubClient(hub), hubIo), "hub-cache-" + CACHES.incrementAndGet(), Props.empty());
    }

    public HubSettings hub() { return hub; }
    public MergeEngine engine() { return engine; }
    public ActorRef<CacheActor.Command> cache() { return cache; }

    /** A resolver for one merge: local folders, else hub repositories through the shared cache actor. */
    public HubModelResolver resolver(List<Path> searchDirs, HubModelResolver.Mode mode) {
        return new HubModelResolver(new LocalModelResolver(searchDirs), cache, engine.system(), hub.cacheDir(), mode);
    }

    /** The commit a hub reference's revision points to (from the cache when known there). */
    public String commitOf(String repo, String revision) {
        java.util.concurrent.CompletionStage<org.mergeengine.hub.HubClient.RepoInfo> f = org.apache.pekko.actor.typed.javadsl.AskPattern.askWithStatus(
                cache, r -> new CacheActor.Resolve(repo, revision, r), java.time.Duration.ofMinutes(10), engine.system().scheduler());
        try {
            return f.toCompletableFuture().join().commit();
        } catch (java.util.concurrent.CompletionException e) {
            Throwable c = e.getCause();
            throw c instanceof RuntimeException re ? re : new org.mergeengine.hub.HubException(c.getMessage() != null ? c.getMessage() : c.toString(), c);
        }
    }

    /** True when every model (and adapter) the config names is a local folder: nothing to fetch from the hub. */
    public static boolean allLocal(MergeConfig cfg, List<Path> searchDirs) {
        LocalModelResolver local = new LocalModelResolver(searchDirs);
        List<org.mergeengine.config.ModelRef> refs = new java.util.ArrayList<>(cfg.referencedModels());
        if (cfg.tokenizer() != null) {
            if (cfg.tokenizer().sourceModel() != null) refs.add(cfg.tokenizer().sourceModel());
            if (cfg.tokenizer().tokens() != null) {
                for (MergeConfig.TokenSpec t : cfg.tokenizer().tokens().values()) if (t.model() != null) refs.add(t.model());
            }
        }
        for (org.mergeengine.config.ModelRef r : refs) {
            if (local.locate(r.withoutLora()) == null) return false;
            if (r.hasLora() && local.locate(new org.mergeengine.config.ModelRef(r.loraPath(), r.loraRevision(), null, null)) == null) return false;
        }
        return true;
    }

    /** The plan from headers alone: downloads config, index, tokenizer and adapter files, no weights. */
    public MergePlan check(MergeConfig cfg, List<Path> searchDirs, PlanOptions opts) {
        try (HubModelResolver r = resolver(searchDirs, HubModelResolver.Mode.HEADERS)) {
            return Planner.plan(cfg, r, opts);
        }
    }

    /** A plan whose inputs are open (in the cache, for hub models); close it when its merge is over. */
    public record Planned(MergePlan plan, AutoCloseable inputs) implements AutoCloseable {
        @Override
        public void close() {
            try {
                inputs.close();
            } catch (Exception ignored) {
                // input files opened for reading only
            }
        }
    }

    /** Checks the whole merge from headers, then downloads what is missing and plans it on the files. */
    public CompletableFuture<Planned> plan(MergeConfig cfg, List<Path> searchDirs, PlanOptions planOpts) {
        return CompletableFuture.supplyAsync(() -> {
            check(cfg, searchDirs, planOpts);
            HubModelResolver r = resolver(searchDirs, HubModelResolver.Mode.FULL);
            try {
                return new Planned(Planner.plan(cfg, r, planOpts), r);
            } catch (RuntimeException e) {
                r.close();
                throw e;
            }
        }, hubIo);
    }

    /** Checks the whole merge first, then downloads what is missing and merges into {@code out}. */
    public CompletableFuture<Progress> merge(MergeConfig cfg, List<Path> searchDirs, Path out, PlanOptions planOpts, MergeOptions opts) {
        return plan(cfg, searchDirs, planOpts).thenCompose(p -> {
            try {
                return engine.runAsync(p.plan(), out, opts).whenComplete((x, e) -> p.close());
            } catch (RuntimeException e) {
                p.close();
                throw e;
            }
        });
    }

    @Override
    public void close() {
        engine.close();
        hubIo.shutdownNow();
    }
}
