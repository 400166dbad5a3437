package org.mergeengine.hub;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.stream.Stream;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.pattern.StatusReply;

/**
 * The one owner of download state on a node. Each revision is resolved once, each file's metadata
 * read once, each file downloaded once: a request for something already under way joins its
 * waiters (Absent, then InFlight(waiters), then Ready; a failure answers the waiters and returns
 * the entry to Absent). The network and disk work runs on an I/O executor; only this actor changes
 * the state.
 */
public final class CacheActor extends AbstractBehavior<CacheActor.Command> {
    public interface Command {}

    /** The commit a revision points to and the repository's files. */
    public record Resolve(String repo, String revision, ActorRef<StatusReply<HubClient.RepoInfo>> replyTo) implements Command {}

    /** A file of a commit, downloaded if needed: replies with its snapshot path. */
    public record Fetch(String repo, String commit, String file, ActorRef<StatusReply<Path>> replyTo) implements Command {}

    /** The first 8 + N bytes of a safetensors file (its header), without downloading the file. */
    public record Header(String repo, String commit, String file, ActorRef<StatusReply<HeaderBytes>> replyTo) implements Command {}

    public record HeaderBytes(byte[] bytes, long fileSize) {}

    private record Done(String key, Object value, Throwable error) implements Command {}

    private final HubClient client;
    private final HubCache cache;
    private final Executor io;
    private final Map<String, Object> ready = new HashMap<>();
    private final Map<String, List<ActorRef<StatusReply<Object>>>> inFlight = new HashMap<>();
    /** HEAD answers, shared by the header, metadata and download work of one file (immutable values). */
    private final Map<String, HubClient.FileMeta> heads = new java.util.concurrent.ConcurrentHashMap<>();

    public static Behavior<Command> create(HubClient client, Executor io) {
        return Behaviors.setup(ctx -> new CacheActor(ctx, client, io));
    }

    private CacheActor(ActorContext<Command> ctx, HubClient client, Executor io) {
        super(ctx);
        this.client = client;
        this.cache = new HubCache(client.settings().cacheDir());
        this.io = io;
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Resolve.class, this::onResolve)
                .onMessage(Fetch.class, this::onFetch)
                .onMessage(Header.class, this::onHeader)
                .onMessage(Done.class, this::onDone)
                .build();
    }

    private Behavior<Command> onResolve(Resolve r) {
        return request("rev:" + r.repo() + "@" + r.revision(), erase(r.replyTo()), () -> resolve(r.repo(), r.revision()));
    }

    private Behavior<Command> onFetch(Fetch f) {
        return request("file:" + f.repo() + "@" + f.commit() + "/" + f.file(), erase(f.replyTo()), () -> fetch(f.repo(), f.commit(), f.file()));
    }

    private Behavior<Command> onHeader(Header h) {
        return request("head:" + h.repo() + "@" + h.commit() + "/" + h.file(), erase(h.replyTo()), () -> header(h.repo(), h.commit(), h.file()));
    }

    /** Every request kind shares one table of waiters; the reply type is fixed by the key's kind. */
    @SuppressWarnings({"unchecked", "rawtypes"})
    private static ActorRef<StatusReply<Object>> erase(ActorRef<?> ref) {
        return (ActorRef) ref;
    }

    private interface Work {
        Object run() throws IOException;
    }

    private Behavior<Command> request(String key, ActorRef<StatusReply<Object>> replyTo, Work work) {
        Object v = ready.get(key);
        if (v != null) {
            replyTo.tell(StatusReply.success(v));
            return this;
        }
        List<ActorRef<StatusReply<Object>>> waiters = inFlight.get(key);
        if (waiters != null) {
            waiters.add(replyTo);
            return this;
        }
        waiters = new ArrayList<>();
        waiters.add(replyTo);
        inFlight.put(key, waiters);
        CompletableFuture<Object> f;
        try {
            f = CompletableFuture.supplyAsync(() -> {
                try {
                    return work.run();
                } catch (IOException e) {
                    throw new HubException(e.getMessage() == null ? e.toString() : e.getMessage(), e);
                }
            }, io);
        } catch (RejectedExecutionException e) {
            // The service is closing: answer now rather than leave the waiters to their ask timeout.
            f = CompletableFuture.failedFuture(new HubException("the hub cache is shutting down; " + key + " was not fetched"));
        }
        getContext().pipeToSelf(f, (value, err) -> new Done(key, value, err));
        return this;
    }

    private Behavior<Command> onDone(Done d) {
        List<ActorRef<StatusReply<Object>>> waiters = inFlight.remove(d.key());
        if (d.error() == null) ready.put(d.key(), d.value());
        Throwable err = d.error() instanceof java.util.concurrent.CompletionException && d.error().getCause() != null ? d.error().getCause() : d.error();
        for (ActorRef<StatusReply<Object>> w : waiters == null ? List.<ActorRef<StatusReply<Object>>>of() : waiters) {
            w.tell(err == null ? StatusReply.success(d.value()) : StatusReply.error(err));
        }
        return this;
    }

    // ---- the work, on the I/O executor ----

    private HubClient.RepoInfo resolve(String repo, String revision) throws IOException {
        String rev = revision == null ? "main" : revision;
        java.util.Optional<String> local = cache.ref(repo, rev);
        if (local.isPresent() && complete(repo, local.get())) {
            return new HubClient.RepoInfo(local.get(), localFiles(repo, local.get()));
        }
        if (client.settings().offline()) {
            throw new HubException(repo + "@" + rev + " is not in the cache " + cache.root() + " (offline mode: HF_HUB_OFFLINE or --offline); download it once online");
        }
        HubClient.RepoInfo info = client.repoInfo(repo, revision);
        cache.writeRef(repo, rev, info.commit());
        return info;
    }

    /** A snapshot that holds a config and its complete weights can be used without asking the hub. */
    private boolean complete(String repo, String commit) {
        Path snap = cache.snapshot(repo, commit);
        if (!Files.exists(snap.resolve("config.json")) && !Files.exists(snap.resolve("adapter_config.json"))) return false;
        Path index = snap.resolve("model.safetensors.index.json");
        if (Files.exists(index)) {
            try {
                var map = org.mergeengine.formats.Json.read(index).path("weight_map");
                for (var it = map.elements(); it.hasNext(); ) if (!Files.exists(snap.resolve(it.next().asText()))) return false;
                return true;
            } catch (RuntimeException e) {
                return false;
            }
        }
        return Files.exists(snap.resolve("model.safetensors")) || Files.exists(snap.resolve("adapter_model.safetensors"));
    }

    private List<String> localFiles(String repo, String commit) throws IOException {
        Path snap = cache.snapshot(repo, commit);
        try (Stream<Path> s = Files.walk(snap)) {
            return s.filter(p -> !Files.isDirectory(p)).map(p -> snap.relativize(p).toString().replace('\\', '/')).sorted().toList();
        }
    }

    private HubClient.FileMeta head(String repo, String commit, String file) throws IOException {
        String key = repo + "@" + commit + "/" + file;
        HubClient.FileMeta m = heads.get(key);
        if (m != null) return m;
        m = client.head(repo, commit, file);
        if (m == null) {
            cache.markMissing(repo, commit, file);
            throw new HubException(repo + " has no file " + file + " at commit " + commit);
        }
        heads.put(key, m);
        return m;
    }

    private HubException offlineMiss(String repo, String commit, String file) {
        return new HubException(repo + "/" + file + " (commit " + commit + ") is not in the cache " + cache.root() + " and offline mode is on");
    }

    private Path fetch(String repo, String commit, String file) throws IOException {
        if (cache.cached(repo, commit, file)) return cache.file(repo, commit, file);
        if (client.settings().offline()) throw offlineMiss(repo, commit, file);
        HubClient.FileMeta m = head(repo, commit, file);
        return cache.locked(repo, m.etag(), () -> {
            Path blob = cache.blob(repo, m.etag());
            if (!Files.exists(blob)) {
                long free = Files.getFileStore(cache.root()).getUsableSpace();
                if (free < m.size()) {
                    throw new HubException("not enough disk space in " + cache.root() + " for " + repo + "/" + file + ": it needs " + m.size()
                            + " bytes and " + free + " are free");
                }
                Files.createDirectories(blob.getParent());
                for (int attempt = 1; ; attempt++) {
                    Path tmp = cache.incomplete(repo, m.etag());
                    try {
                        client.download(m, tmp);
                        Files.move(tmp, blob, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
                        break;
                    } catch (HubClient.ChecksumException e) {
                        Files.deleteIfExists(tmp);
                        if (attempt >= 2) throw e;
                    } catch (IOException | RuntimeException e) {
                        Files.deleteIfExists(tmp);
                        throw e;
                    }
                }
            }
            return cache.link(repo, commit, file, m.etag());
        });
    }

    private HeaderBytes header(String repo, String commit, String file) throws IOException {
        if (cache.cached(repo, commit, file)) {
            Path p = cache.file(repo, commit, file);
            try (var ch = java.nio.channels.FileChannel.open(p)) {
                java.nio.ByteBuffer len = java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                ch.read(len, 0);
                long n = len.getLong(0);
                if (n < 0 || n > org.mergeengine.formats.SafetensorsFile.MAX_HEADER || 8 + n > ch.size()) {
                    return new HeaderBytes(len.array(), ch.size()); // let the parser name the problem
                }
                java.nio.ByteBuffer all = java.nio.ByteBuffer.allocate((int) (8 + n));
                ch.read(all, 0);
                return new HeaderBytes(all.array(), ch.size());
            }
        }
        if (client.settings().offline()) throw offlineMiss(repo, commit, file);
        HubClient.FileMeta m = head(repo, commit, file);
        if (m.size() < 8) return new HeaderBytes(new byte[0], m.size());
        byte[] first = client.range(m, 0, 7);
        long n = java.nio.ByteBuffer.wrap(first).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
        if (n < 0 || n > org.mergeengine.formats.SafetensorsFile.MAX_HEADER || 8 + n > m.size()) return new HeaderBytes(first, m.size());
        byte[] rest = client.range(m, 8, 7 + n);
        byte[] all = new byte[(int) (8 + n)];
        System.arraycopy(first, 0, all, 0, 8);
        System.arraycopy(rest, 0, all, 8, rest.length);
        return new HeaderBytes(all, m.size());
    }
}
