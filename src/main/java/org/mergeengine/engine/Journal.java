package org.mergeengine.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;
import java.util.zip.CRC32;
import org.mergeengine.formats.ShardLayout;

/**
 * The record of finished work in an output's temporary folder: one line per finished tensor (or
 * part of one), "name from to crc32", appended when its last byte is written. After a crash the
 * next run reads the journal back, re-reads each entry's bytes and keeps the entries whose checksum
 * still matches; a torn last line, or bytes that never reached the disk, simply mean that part is
 * done again.
 */
final class Journal implements AutoCloseable {
    static final String FILE = ".merge-journal";
    private final FileChannel out;

    private Journal(FileChannel out) {
        this.out = out;
    }

    static Journal open(Path dir) throws IOException {
        return new Journal(FileChannel.open(dir.resolve(FILE), StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND));
    }

    synchronized void finished(String tensor, long from, long to, long crc) {
        byte[] line = (tensor + " " + from + " " + to + " " + Long.toHexString(crc) + "\n").getBytes(StandardCharsets.UTF_8);
        try {
            ByteBuffer b = ByteBuffer.wrap(line);
            while (b.hasRemaining()) out.write(b);
        } catch (IOException e) {
            // losing a journal line only costs redoing that part after a crash
        }
    }

    /** The parts recorded in {@code dir}: "name@from-to" (element offsets) to the CRC32 of their bytes. */
    static Map<String, Long> recorded(Path dir) {
        Map<String, Long> ok = new HashMap<>();
        Path f = dir.resolve(FILE);
        if (!Files.isRegularFile(f)) return ok;
        try {
            for (String line : Files.readAllLines(f, StandardCharsets.UTF_8)) {
                String[] p = line.split(" ");
                if (p.length != 4) continue;
                ok.put(p[0] + "@" + p[1] + "-" + p[2], Long.parseUnsignedLong(p[3], 16));
            }
        } catch (IOException | RuntimeException e) {
            return new HashMap<>();
        }
        return ok;
    }

    /** Re-reads a part of a tensor from the shard on disk and checks its CRC32. */
    static boolean intact(Path dir, ShardLayout layout, String tensor, long fromByte, long toByte, long crc) {
        ShardLayout.Placement pl = layout.placement(tensor);
        if (pl == null || toByte > pl.byteSize() || fromByte < 0 || fromByte > toByte) return false;
        Path shard = dir.resolve(layout.shards().get(pl.shard()).fileName());
        try (FileChannel ch = FileChannel.open(shard, StandardOpenOption.READ)) {
            CRC32 c = new CRC32();
            ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
            long pos = pl.position() + fromByte, end = pl.position() + toByte;
            while (pos < end) {
                b.clear().limit((int) Math.min(b.capacity(), end - pos));
                int n = ch.read(b, pos);
                if (n <= 0) return false;
                b.flip();
                c.update(b);
                pos += n;
            }
            return c.getValue() == crc;
        } catch (IOException e) {
            return false;
        }
    }

    @Override
    public void close() {
        try {
            out.close();
        } catch (IOException ignored) {
            // the journal is deleted with the folder's completion anyway
        }
    }
}
