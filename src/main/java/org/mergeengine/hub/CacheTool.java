package org.mergeengine.hub;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Stream;

/** {@code cache ls | verify | prune}: what the hub cache holds, whether its blobs are intact, and removing unreferenced blobs. */
public final class CacheTool {
    private final Path root;
    private final PrintStream out;

    public CacheTool(Path root, PrintStream out) {
        this.root = root;
        this.out = out;
    }

    List<Path> repos() throws IOException {
        if (!Files.isDirectory(root)) return List.of();
        try (Stream<Path> s = Files.list(root)) {
            return s.filter(p -> p.getFileName().toString().startsWith("models--")).sorted().toList();
        }
    }

    static String repoId(Path dir) {
        return dir.getFileName().toString().substring("models--".length()).replace("--", "/");
    }

    /** Repositories, their revisions and the bytes their blobs take. */
    public void ls() throws IOException {
        long total = 0;
        for (Path r : repos()) {
            long size = 0;
            int blobs = 0;
            Path b = r.resolve("blobs");
            if (Files.isDirectory(b)) {
                try (Stream<Path> s = Files.list(b)) {
                    for (Path f : (Iterable<Path>) s::iterator) {
                        if (f.toString().endsWith(".incomplete")) continue;
                        size += Files.size(f);
                        blobs++;
                    }
                }
            }
            StringBuilder refs = new StringBuilder();
            Path rd = r.resolve("refs");
            if (Files.isDirectory(rd)) {
                try (Stream<Path> s = Files.walk(rd)) {
                    for (Path f : (Iterable<Path>) s.filter(Files::isRegularFile)::iterator) {
                        refs.append(refs.length() == 0 ? "" : ", ").append(rd.relativize(f)).append('=').append(Files.readString(f).trim(), 0, 8);
                    }
                }
            }
            out.println(String.format(Locale.ROOT, "%-50s %10.1f MB  %3d blobs  %s", repoId(r), size / 1e6, blobs, refs));
            total += size;
        }
        out.println(String.format(Locale.ROOT, "total %.1f MB in %s", total / 1e6, root));
    }

    /** Re-hashes every blob against its name (sha256 for LFS files, git's sha1 otherwise); returns the number of bad ones. */
    public int verify() throws IOException {
        int bad = 0, ok = 0;
        for (Path r : repos()) {
            Path b = r.resolve("blobs");
            if (!Files.isDirectory(b)) continue;
            try (Stream<Path> s = Files.list(b)) {
                for (Path f : (Iterable<Path>) s::iterator) {
                    String name = f.getFileName().toString();
                    if (name.endsWith(".incomplete")) continue;
                    String got = name.length() == 64 ? HubClient.sha256(f) : HubClient.gitSha1(f);
                    if (got.equals(name)) {
                        ok++;
                    } else {
                        bad++;
                        out.println("CORRUPT " + repoId(r) + " blob " + name + " hashes to " + got + "; delete it and download again");
                    }
                }
            }
        }
        out.println(ok + " blobs intact, " + bad + " corrupt");
        return bad;
    }

    /** Deletes blobs no snapshot points to, and leftover .incomplete files; returns the bytes freed. */
    public long prune() throws IOException {
        long freed = 0;
        for (Path r : repos()) {
            Set<Path> used = new HashSet<>();
            Path snaps = r.resolve("snapshots");
            if (Files.isDirectory(snaps)) {
                try (Stream<Path> s = Files.walk(snaps)) {
                    for (Path p : (Iterable<Path>) s::iterator) {
                        if (Files.isSymbolicLink(p)) used.add(p.getParent().resolve(Files.readSymbolicLink(p)).normalize());
                    }
                }
            }
            Path b = r.resolve("blobs");
            if (!Files.isDirectory(b)) continue;
            try (Stream<Path> s = Files.list(b)) {
                for (Path f : (Iterable<Path>) s::iterator) {
                    if (used.contains(f.normalize())) continue;
                    long size = Files.size(f);
                    Files.delete(f);
                    freed += size;
                    out.println("removed " + repoId(r) + " blob " + f.getFileName() + " (" + size + " bytes)");
                }
            }
        }
        out.println(String.format(Locale.ROOT, "freed %.1f MB", freed / 1e6));
        return freed;
    }
}
