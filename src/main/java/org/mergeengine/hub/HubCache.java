package org.mergeengine.hub;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Optional;

/**
 * The huggingface_hub cache layout, so that caches are shared with Python tools both ways:
 * <pre>
 *   &lt;cache&gt;/models--org--name/blobs/&lt;etag&gt;
 *   &lt;cache&gt;/models--org--name/refs/&lt;revision&gt;                  (holds the commit)
 *   &lt;cache&gt;/models--org--name/snapshots/&lt;commit&gt;/&lt;file&gt;  -> ../../blobs/&lt;etag&gt;
 *   &lt;cache&gt;/models--org--name/.no_exist/&lt;commit&gt;/&lt;file&gt;
 *   &lt;cache&gt;/.locks/models--org--name/&lt;etag&gt;.lock
 * </pre>
 * Plain filesystem operations; the cache actor decides when they happen.
 */
public final class HubCache {
    private final Path root;

    public HubCache(Path root) {
        this.root = root;
    }

    public Path root() { return root; }

    public Path repoDir(String repo) {
        return root.resolve(RepoPaths.folder(repo));
    }

    /** The commit a revision points to, from refs/ (a commit hash is its own answer). */
    public Optional<String> ref(String repo, String revision) {
        if (RepoPaths.isCommit(revision)) return Optional.of(revision);
        Path f = repoDir(repo).resolve("refs").resolve(RepoPaths.checkFile(repo, revision));
        try {
            if (Files.isRegularFile(f)) {
                String c = Files.readString(f, StandardCharsets.UTF_8).trim();
                if (RepoPaths.isCommit(c)) return Optional.of(c);
            }
        } catch (IOException ignored) {
            // unreadable ref: treat as absent
        }
        return Optional.empty();
    }

    public void writeRef(String repo, String revision, String commit) throws IOException {
        if (RepoPaths.isCommit(revision)) return;
        Path f = repoDir(repo).resolve("refs").resolve(RepoPaths.checkFile(repo, revision));
        if (ref(repo, revision).map(commit::equals).orElse(false)) return;
        Files.createDirectories(f.getParent());
        Path tmp = f.resolveSibling(f.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        Files.writeString(tmp, commit, StandardCharsets.UTF_8);
        Files.move(tmp, f, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    public Path snapshot(String repo, String commit) {
        return repoDir(repo).resolve("snapshots").resolve(commit);
    }

    /** The snapshot path of a file; it exists when the file is cached. */
    public Path file(String repo, String commit, String file) {
        Path p = snapshot(repo, commit).resolve(RepoPaths.checkFile(repo, file)).normalize();
        if (!p.startsWith(snapshot(repo, commit))) throw new HubException("refusing file name '" + file + "' of " + repo);
        return p;
    }

    public boolean cached(String repo, String commit, String file) {
        return Files.exists(file(repo, commit, file));
    }

    public void markMissing(String repo, String commit, String file) throws IOException {
        Path p = repoDir(repo).resolve(".no_exist").resolve(commit).resolve(RepoPaths.checkFile(repo, file));
        Files.createDirectories(p.getParent());
        if (!Files.exists(p)) Files.createFile(p);
    }

    public Path blob(String repo, String etag) {
        return repoDir(repo).resolve("blobs").resolve(etag);
    }

    public Path lockFile(String repo, String etag) {
        return root.resolve(".locks").resolve(RepoPaths.folder(repo)).resolve(etag + ".lock");
    }

    /** A temporary name beside the blob, unique to this process (a leftover from a crash is simply ignored). */
    public Path incomplete(String repo, String etag) {
        return blob(repo, etag).resolveSibling(etag + "." + Long.toHexString(ProcessHandle.current().pid() & 0xffffffffL)
                + Long.toHexString(System.nanoTime() & 0xffff) + ".incomplete");
    }

    /** Points snapshots/&lt;commit&gt;/&lt;file&gt; at blobs/&lt;etag&gt; with a relative link, as huggingface_hub does. */
    public Path link(String repo, String commit, String file, String etag) throws IOException {
        Path pointer = file(repo, commit, file);
        Files.createDirectories(pointer.getParent());
        Path target = pointer.getParent().relativize(blob(repo, etag));
        try {
            Files.createSymbolicLink(pointer, target);
        } catch (FileAlreadyExistsException e) {
            // another process linked it first: same content by construction
        } catch (UnsupportedOperationException | IOException e) {
            if (!Files.exists(pointer)) Files.copy(blob(repo, etag), pointer); // filesystems without symlinks
        }
        return pointer;
    }

    /** Runs {@code body} holding the cross-process lock of a blob (shared with Python processes using the same cache). */
    public <T> T locked(String repo, String etag, IoCall<T> body) throws IOException {
        Path lock = lockFile(repo, etag);
        Files.createDirectories(lock.getParent());
        try (FileChannel ch = FileChannel.open(lock, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
             FileLock l = acquire(ch, lock)) {
            return body.call();
        }
    }

    /**
     * Polls instead of blocking: file locks belong to the process, so two processes each holding one
     * blob's lock while another of their threads waits for the other's look like a deadlock to the
     * kernel (EDEADLK), though no holder ever waits. A holder only downloads, so polling always ends.
     */
    private static FileLock acquire(FileChannel ch, Path lock) throws IOException {
        while (true) {
            FileLock l = ch.tryLock();
            if (l != null) return l;
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while waiting for " + lock);
            }
        }
    }

    @FunctionalInterface
    public interface IoCall<T> {
        T call() throws IOException;
    }
}
