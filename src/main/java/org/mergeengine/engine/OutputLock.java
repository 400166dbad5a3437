package org.mergeengine.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;
import org.mergeengine.MergeException;

/**
 * The lock of an output folder: a file beside it ({@code .<name>.lock}) locked for the whole run,
 * so that two merges never write one folder at once, whether they run in two processes or in one.
 * The holder writes its process id into the file, for the other's message, and removes the file
 * before it lets go; a run that locked the file just as it was removed finds it gone and tries again.
 *
 * <p>Locks of this process are also kept in a table, and a folder held here is refused without
 * touching its lock file: the operating system drops all of a process's locks on a file when any
 * descriptor of that file is closed, so a second look through another channel would end the first
 * run's lock.
 */
public final class OutputLock implements AutoCloseable {
    private static final Map<Path, OutputLock> HELD = new HashMap<>(); // guarded by itself

    private final Path key;
    private final Path file;
    private final FileChannel channel;
    private final FileLock lock;

    private OutputLock(Path key, Path file, FileChannel channel, FileLock lock) {
        this.key = key;
        this.file = file;
        this.channel = channel;
        this.lock = lock;
    }

    public static Path fileFor(Path out) {
        Path o = OutputFolder.normalize(out);
        return o.resolveSibling("." + o.getFileName() + ".lock");
    }

    /** Locks {@code out} for this run; a merge already writing it is an error naming the folder and the holder. */
    public static OutputLock acquire(Path out) {
        Path o = OutputFolder.normalize(out);
        Path f = fileFor(o);
        synchronized (HELD) {
            for (int attempt = 0; attempt < 16; attempt++) {
                FileChannel ch = null;
                try {
                    Files.createDirectories(f.getParent());
                    Path key = f.getParent().toRealPath().resolve(f.getFileName());
                    if (HELD.containsKey(key)) throw busy(o, f, ProcessHandle.current().pid() + ", this one");
                    ch = FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
                    FileLock l = tryLock(ch);
                    if (l == null) throw busy(o, f, holder(f));
                    if (!Files.exists(f, LinkOption.NOFOLLOW_LINKS)) { // its last holder removed it after we opened it
                        l.release();
                        close(ch);
                        continue;
                    }
                    ch.truncate(0);
                    ch.write(ByteBuffer.wrap((ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.US_ASCII)), 0);
                    ch.force(false);
                    OutputLock held = new OutputLock(key, f, ch, l);
                    HELD.put(key, held);
                    return held;
                } catch (IOException e) {
                    close(ch);
                    throw MergeException.user("cannot lock the output folder " + o + " (" + f + ": " + e.getMessage() + ")");
                } catch (RuntimeException e) {
                    close(ch);
                    throw e;
                }
            }
            throw busy(o, f, null);
        }
    }

    /** Refuses early (before planning) an output folder that another merge holds; takes nothing. */
    public static void checkFree(Path out) {
        Path o = OutputFolder.normalize(out);
        Path f = fileFor(o);
        if (!Files.exists(f)) return;
        synchronized (HELD) {
            try {
                if (HELD.containsKey(f.getParent().toRealPath().resolve(f.getFileName()))) throw busy(o, f, ProcessHandle.current().pid() + ", this one");
            } catch (IOException e) {
                return; // the lock taken when the merge starts decides
            }
            try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                FileLock l = tryLock(ch);
                if (l == null) throw busy(o, f, holder(f));
                l.release();
            } catch (IOException e) {
                // gone or unreadable: the lock taken when the merge starts decides
            }
        }
    }

    private static FileLock tryLock(FileChannel ch) throws IOException {
        try {
            return ch.tryLock();
        } catch (OverlappingFileLockException e) {
            return null; // locked through a path this table does not know (another spelling of it)
        }
    }

    /** The process id the holder wrote (read only when this process holds no lock on the file). */
    private static String holder(Path f) {
        try {
            String h = Files.readString(f, StandardCharsets.US_ASCII).trim();
            return h.matches("\\d{1,18}") ? h : null;
        } catch (IOException e) {
            return null;
        }
    }

    private static MergeException busy(Path out, Path lockFile, String pid) {
        return MergeException.user(out + " is already being written by another merge (" + (pid == null ? "another process" : "process " + pid)
                + " holds " + lockFile.getFileName() + "); wait for it to finish, or choose another output folder");
    }

    @Override
    public void close() {
        synchronized (HELD) {
            HELD.remove(key, this);
            try {
                if (lock.isValid()) {
                    Files.deleteIfExists(file); // while still locked: nobody else can have locked this file
                    lock.release();
                }
            } catch (IOException ignored) {
                // closing the channel releases it anyway
            }
            close(channel);
        }
    }

    private static void close(FileChannel ch) {
        if (ch == null) return;
        try {
            ch.close();
        } catch (IOException ignored) {
            // nothing was written through it that matters
        }
    }
}
