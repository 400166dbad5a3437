package org.mergeengine.engine;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermission;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.mergeengine.MergeException;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.plan.MergePlan;

/**
 * The output model folder. A merge writes into a hidden temporary sibling and moves it into place
 * only when every file is complete, so a failed or killed run never leaves a folder that looks
 * like a finished model. The marker file, written last inside the temporary folder, records what
 * made the folder.
 */
public final class OutputFolder {
    public static final String MARKER = ".merge-engine-complete.json";

    private OutputFolder() {}

    /**
     * Refuses an output path that holds something other than an earlier merge (nothing is
     * overwritten by surprise), or that another merge is writing now.
     */
    public static void check(Path out) {
        Path o = normalize(out);
        checkContents(o);
        OutputLock.checkFree(o);
    }

    /** The output path as the merge uses it: absolute, with '.' and '..' resolved before any folder is made. */
    public static Path normalize(Path out) {
        Path o = out.toAbsolutePath().normalize();
        if (o.getFileName() == null) throw MergeException.user(out + " is not a usable output folder (it names the root)");
        return o;
    }

    /** Refuses an existing {@code out} that is neither empty nor an earlier merge-engine output. */
    static void checkContents(Path out) {
        if (Files.exists(out, LinkOption.NOFOLLOW_LINKS) && !Files.isDirectory(out, LinkOption.NOFOLLOW_LINKS)) {
            throw MergeException.user(out + " exists and is " + (Files.isSymbolicLink(out) ? "a symbolic link" : "a file") + "; choose a folder for the output");
        }
        if (Files.isDirectory(out, LinkOption.NOFOLLOW_LINKS) && !isEarlierOutput(out)) {
            throw MergeException.user(out + " exists and is not an earlier merge-engine output; choose an empty or new folder, or remove it");
        }
    }

    private static boolean isEarlierOutput(Path dir) {
        return Files.isRegularFile(dir.resolve(MARKER), LinkOption.NOFOLLOW_LINKS) || isEmpty(dir);
    }

    /**
     * Temporary folders of {@code out} other than {@code keep}: runs of other plans that crashed
     * (their inputs or config changed since, so nothing resumes them) and replaced outputs a crash
     * left aside. Only the holder of the output's lock may remove them: no live run uses them then.
     */
    public static List<Path> staleTemporaries(Path out, Path keep) {
        Path o = normalize(out);
        String partial = "." + o.getFileName() + ".partial-", old = "." + o.getFileName() + ".old-";
        List<Path> stale = new ArrayList<>();
        if (!Files.isDirectory(o.getParent())) return stale;
        try (DirectoryStream<Path> s = Files.newDirectoryStream(o.getParent())) {
            for (Path p : s) {
                String n = p.getFileName().toString();
                if ((n.startsWith(partial) || n.startsWith(old)) && !p.equals(keep) && Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) stale.add(p);
            }
        } catch (IOException e) {
            return stale;
        }
        stale.sort(null);
        return stale;
    }

    static boolean isEmpty(Path dir) {
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
            return !s.iterator().hasNext();
        } catch (IOException e) {
            return false;
        }
    }

    /**
     * The temporary folder of a merge: named by the plan's hash, so that a run interrupted by a
     * crash is found and finished by the next run of the same plan.
     */
    public static Path tempFor(Path out, String planHash) throws IOException {
        Path t = tempPath(out, planHash);
        Files.createDirectories(t.getParent());
        return t;
    }

    /** Where {@link #tempFor} puts the temporary folder, without making anything. */
    public static Path tempPath(Path out, String planHash) {
        Path o = normalize(out);
        return o.resolveSibling("." + o.getFileName() + ".partial-" + planHash.substring(0, 16));
    }

    /**
     * What decides the output bytes: config, layout, every tensor's inputs and parameters. Inputs
     * count by content where the name says it (a hub cache blob is named by its hash), else by
     * path, size and time; so nodes of a cluster, each with its own cache, agree on the hash.
     */
    public static String planHash(MergePlan plan) {
        StringBuilder sb = new StringBuilder(plan.config().sourceText() == null ? "" : plan.config().sourceText());
        for (org.mergeengine.formats.ShardLayout.Shard s : plan.layout().shards()) {
            sb.append('\n').append(s.fileName()).append(' ').append(java.util.HexFormat.of().formatHex(s.header()));
        }
        // Each file's identity once (its real path, size and time: syscalls), not once per tensor that reads it.
        Map<Path, String> ids = new HashMap<>();
        for (org.mergeengine.plan.PlannedTensor t : plan.tensors()) {
            sb.append('\n').append(t.name()).append(' ').append(t.context().seed());
            for (org.mergeengine.plan.PlannedTensor.Input in : t.inputs()) {
                sb.append(' ').append(ids.computeIfAbsent(in.source().file().path(), OutputFolder::fileIdentity)).append(':').append(in.source().info().name());
                if (in.source().delta() != null) sb.append(":lora:").append(ids.computeIfAbsent(in.source().delta().file().path(), OutputFolder::fileIdentity));
            }
        }
        return sha256(sb.toString());
    }

    static String fileIdentity(Path f) {
        try {
            Path real = f.toRealPath();
            long size = Files.size(real);
            Path parent = real.getParent();
            if (parent != null && parent.getFileName() != null && parent.getFileName().toString().equals("blobs")) {
                return "blob:" + real.getFileName() + ":" + size;
            }
            return real + ":" + size + ":" + Files.getLastModifiedTime(real).toMillis();
        } catch (IOException e) {
            return f + ":?";
        }
    }

    /** Writes everything besides the shards, then moves the folder into place. */
    public static void finish(MergePlan plan, Path tmp, Path out, MergeOptions opts) throws IOException {
        ObjectNode index = plan.layout().index();
        if (index != null) Json.write(tmp.resolve("model.safetensors.index.json"), index);
        for (Map.Entry<String, byte[]> f : plan.files().files(out.getFileName().toString(), opts.copyTokenizer(), opts.writeModelCard()).entrySet()) {
            Files.write(tmp.resolve(f.getKey()), f.getValue());
            keepPermissions(tmp.resolve(f.getKey()), f.getKey(), f.getValue(), plan.models().values());
        }
        String configText = plan.config().sourceText();
        Files.deleteIfExists(tmp.resolve(Journal.FILE));
        ObjectNode marker = Json.MAPPER.createObjectNode();
        marker.put("tool", "merge-engine");
        marker.put("config_sha256", sha256(configText == null ? "" : configText));
        if (opts.stageHash() != null) marker.put("stage_hash", opts.stageHash());
        marker.put("tensors", plan.tensors().size());
        marker.put("total_size", plan.layout().totalSize());
        marker.put("completed", Instant.now().toString());
        Json.write(tmp.resolve(MARKER), marker);
        moveIntoPlace(tmp, out);
    }

    /**
     * A file copied unchanged from an input folder gets no wider permissions than its source there:
     * a file only its owner may read stays so in the output (which users share and upload).
     */
    static void keepPermissions(Path written, String name, byte[] bytes, Collection<ModelFolder> models) throws IOException {
        if (Files.getFileAttributeView(written, PosixFileAttributeView.class) == null) return;
        Set<PosixFilePermission> perms = EnumSet.copyOf(Files.getPosixFilePermissions(written));
        boolean narrowed = false;
        for (ModelFolder m : models) {
            for (Path src : new Path[] {m.resolveTokenizerFile(name), m.resolveInside(name)}) {
                if (src == null || !Files.isRegularFile(src) || Files.size(src) != bytes.length || !Arrays.equals(Files.readAllBytes(src), bytes)) continue;
                if (Files.getFileAttributeView(src, PosixFileAttributeView.class) == null) continue;
                narrowed |= perms.retainAll(Files.getPosixFilePermissions(src));
            }
        }
        if (!narrowed) return;
        perms.add(PosixFilePermission.OWNER_READ); // the owner keeps what it needs to replace the folder later
        perms.add(PosixFilePermission.OWNER_WRITE);
        Files.setPosixFilePermissions(written, perms);
    }

    /**
     * Replaces {@code out} with the finished folder. What stands at {@code out} now is checked again
     * (a folder made while the merge ran is not an earlier output), and again once it is moved aside,
     * so that only merge-engine output is ever deleted. A refusal leaves the finished merge in
     * {@code tmp} and says so.
     */
    static void moveIntoPlace(Path tmp, Path out) throws IOException {
        Path old = null;
        if (Files.exists(out, LinkOption.NOFOLLOW_LINKS)) {
            refuseUnlessEarlierOutput(out, tmp);
            old = out.resolveSibling("." + out.getFileName() + ".old-" + System.nanoTime());
            Files.move(out, old, StandardCopyOption.ATOMIC_MOVE);
            if (!Files.isDirectory(old, LinkOption.NOFOLLOW_LINKS) || !isEarlierOutput(old)) { // changed between the check and the move
                Files.move(old, out, StandardCopyOption.ATOMIC_MOVE);
                refuseUnlessEarlierOutput(out, tmp);
            }
        }
        Files.move(tmp, out, StandardCopyOption.ATOMIC_MOVE);
        if (old != null) deleteTree(old);
    }

    private static void refuseUnlessEarlierOutput(Path out, Path tmp) {
        if (!Files.isDirectory(out, LinkOption.NOFOLLOW_LINKS) || !isEarlierOutput(out)) {
            throw MergeException.user(out + " appeared while the merge ran and is not an earlier merge-engine output, so it is left as it is;"
                    + " the finished merge is in " + tmp + ": move it where you want it");
        }
    }

    public static void deleteTree(Path dir) {
        if (!Files.exists(dir)) return;
        try {
            Files.walkFileTree(dir, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                    Files.delete(file);
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult postVisitDirectory(Path d, IOException exc) throws IOException {
                    Files.delete(d);
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (IOException ignored) {
            // best effort: a leftover hidden temp folder never looks like a finished model
        }
    }

    public static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
