package org.mergeengine.formats;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes the shards of a {@link ShardLayout} into a folder. Each shard file is created at its
 * final size with its header in place; tensor bytes are then written at their planned positions
 * by any number of threads at once (positional writes on a shared channel need no lock).
 */
public final class SafetensorsWriter implements AutoCloseable {
    private final ShardLayout layout;
    private final FileChannel[] channels;
    private final Path dir;

    public SafetensorsWriter(Path dir, ShardLayout layout) throws IOException {
        this.dir = dir;
        this.layout = layout;
        this.channels = new FileChannel[layout.shards().size()];
        boolean ok = false;
        try {
            for (int i = 0; i < channels.length; i++) {
                ShardLayout.Shard s = layout.shards().get(i);
                FileChannel ch = FileChannel.open(dir.resolve(s.fileName()), StandardOpenOption.CREATE,
                        StandardOpenOption.WRITE, StandardOpenOption.READ, StandardOpenOption.TRUNCATE_EXISTING);
                channels[i] = ch;
                writeFully(ch, ByteBuffer.wrap(s.header()), 0);
            }
            ok = true;
        } finally {
            if (!ok) close();
        }
    }

    public ShardLayout layout() { return layout; }
    public Path dir() { return dir; }

    /** Writes {@code data} (from its position to its limit) at byte {@code offset} of tensor {@code name}'s data. */
    public void write(String name, long offset, ByteBuffer data) throws IOException {
        ShardLayout.Placement p = layout.placement(name);
        if (p == null) throw new IllegalArgumentException("tensor " + name + " is not in the output layout");
        if (offset + data.remaining() > p.byteSize()) {
            throw new IllegalArgumentException("write past the end of tensor " + name);
        }
        writeFully(channels[p.shard()], data, p.position() + offset);
    }

    /** Flushes every shard to the disk and closes them; after this the files are complete. */
    public void finish() throws IOException {
        for (int i = 0; i < channels.length; i++) {
            FileChannel ch = channels[i];
            long want = layout.shards().get(i).fileSize();
            if (ch.size() != want) {
                throw new IOException(layout.shards().get(i).fileName() + " is " + ch.size() + " bytes, expected " + want);
            }
            ch.force(true);
        }
        close();
    }

    @Override
    public void close() {
        for (FileChannel ch : channels) {
            if (ch == null) continue;
            try {
                ch.close();
            } catch (IOException ignored) {
                // closing after a failure; the temp folder is discarded anyway
            }
        }
    }

    static void writeFully(FileChannel ch, ByteBuffer b, long pos) throws IOException {
        while (b.hasRemaining()) {
            pos += ch.write(b, pos);
        }
    }

    /** A whole tensor held in memory, for small files (tests, adapters, example models). */
    public record TensorData(String name, DType dtype, long[] shape, byte[] bytes) {
        public static TensorData ofFloats(String name, DType dtype, long[] shape, float[] values) {
            ByteBuffer b = ByteBuffer.allocate(values.length * dtype.size());
            org.mergeengine.tensor.Convert.encode(dtype, values, 0, values.length, b);
            return new TensorData(name, dtype, shape, b.array());
        }
    }

    /** Writes one unsharded file through a temporary sibling and a rename. */
    public static void writeFile(Path file, List<TensorData> tensors) throws IOException {
        List<ShardLayout.Entry> entries = new ArrayList<>();
        for (TensorData t : tensors) entries.add(new ShardLayout.Entry(t.name(), t.dtype(), t.shape()));
        ShardLayout layout = ShardLayout.plan(entries, 0, "tmp");
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        Files.createDirectories(file.toAbsolutePath().getParent());
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            writeFully(ch, ByteBuffer.wrap(layout.shards().get(0).header()), 0);
            for (TensorData t : tensors) {
                writeFully(ch, ByteBuffer.wrap(t.bytes()), layout.placement(t.name()).position());
            }
        }
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}
