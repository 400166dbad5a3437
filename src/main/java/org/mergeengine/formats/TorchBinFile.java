package org.mergeengine.formats;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A PyTorch checkpoint (pytorch_model.bin: a ZIP of data.pkl and data/&lt;key&gt; storages), read
 * without running anything: the ZIP's central directory gives each stored entry's place in the file,
 * {@link RestrictedUnpickler} turns data.pkl into tensor locations, and tensor bytes are then read
 * lazily at their offsets, like safetensors data.
 */
public final class TorchBinFile implements TensorFile {
    private final Path path;
    private final FileChannel ch;
    private final Map<String, TensorInfo> tensors;

    private TorchBinFile(Path path, FileChannel ch, Map<String, TensorInfo> tensors) {
        this.path = path;
        this.ch = ch;
        this.tensors = tensors;
    }

    /** A ZIP entry stored without compression: where its bytes start and how many there are. */
    record Entry(String name, long dataStart, long size) {}

    public static TorchBinFile open(Path path) {
        FileChannel ch = SafetensorsFile.openRead(path);
        try {
            Map<String, Entry> entries = centralDirectory(path, ch);
            Entry pkl = null;
            for (Entry e : entries.values()) if (e.name().endsWith("/data.pkl") && e.name().indexOf('/') == e.name().length() - 9) pkl = e;
            if (pkl == null) {
                throw new FormatException(path + ": no data.pkl inside; only the zip format of torch.save (PyTorch 1.6 and later) is supported");
            }
            String archive = pkl.name().substring(0, pkl.name().length() - "data.pkl".length());
            if (pkl.size() > 256L << 20) throw new FormatException(path + ": data.pkl is " + pkl.size() + " bytes, more than a state dict needs");
            ByteBuffer b = ByteBuffer.allocate((int) pkl.size());
            readFully(ch, b, pkl.dataStart(), path);
            Map<String, RestrictedUnpickler.TensorRef> refs = RestrictedUnpickler.stateDict(b.array(), path);
            Map<String, TensorInfo> out = new LinkedHashMap<>();
            for (Map.Entry<String, RestrictedUnpickler.TensorRef> e : refs.entrySet()) {
                RestrictedUnpickler.TensorRef t = e.getValue();
                Entry data = entries.get(archive + "data/" + t.storage().key());
                if (data == null) throw new FormatException(path + ": tensor '" + e.getKey() + "' uses storage " + t.storage().key() + ", which the archive lacks");
                long es = t.storage().dtype().size();
                long numel = 1;
                try {
                    for (long d : t.shape()) numel = Math.multiplyExact(numel, d);
                    long begin = Math.addExact(data.dataStart(), Math.multiplyExact(t.offset(), es));
                    long end = Math.addExact(begin, Math.multiplyExact(numel, es));
                    if (t.offset() < 0 || end > data.dataStart() + data.size()) {
                        throw new FormatException(path + ": tensor '" + e.getKey() + "' runs past the end of its storage");
                    }
                    out.put(e.getKey(), new TensorInfo(e.getKey(), t.storage().dtype(), t.shape(), begin, end));
                } catch (ArithmeticException ex) {
                    throw new FormatException(path + ": tensor '" + e.getKey() + "' has an impossible size");
                }
            }
            return new TorchBinFile(path, ch, Collections.unmodifiableMap(out));
        } catch (FormatException e) {
            SafetensorsFile.closeQuietly(ch);
            throw e;
        } catch (RuntimeException e) {
            // every offset is checked; this is the last guard, so that no crafted file ends in a stack trace
            SafetensorsFile.closeQuietly(ch);
            throw new FormatException(path + ": damaged checkpoint (" + e.getClass().getSimpleName() + ")");
        }
    }

    /** Parses the end-of-central-directory record (ZIP64 too) and every central directory entry. */
    static Map<String, Entry> centralDirectory(Path path, FileChannel ch) {
        try {
            long size = ch.size();
            if (size < 22) throw new FormatException(path + ": too small to be a zip archive (.bin checkpoint)");
            int tail = (int) Math.min(size, 65557);
            ByteBuffer t = ByteBuffer.allocate(tail).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, t, size - tail, path);
            int eocd = -1;
            for (int i = tail - 22; i >= 0; i--) if (t.getInt(i) == 0x06054b50) {
                eocd = i;
                break;
            }
            if (eocd < 0) throw new FormatException(path + ": not a zip archive (no end of central directory); is it a legacy pre-1.6 torch file?");
            long count = t.getShort(eocd + 10) & 0xffff, cdSize = t.getInt(eocd + 12) & 0xffffffffL, cdOffset = t.getInt(eocd + 16) & 0xffffffffL;
            if (count == 0xffff || cdSize == 0xffffffffL || cdOffset == 0xffffffffL) {
                int loc = eocd - 20;
                if (loc < 0 || t.getInt(loc) != 0x07064b50) throw new FormatException(path + ": ZIP64 archive without its locator");
                long z = t.getLong(loc + 8);
                if (z < 0 || z > size - 56) throw new FormatException(path + ": the ZIP64 locator points outside the file (offset " + Long.toUnsignedString(z) + ")");
                ByteBuffer z64 = ByteBuffer.allocate(56).order(ByteOrder.LITTLE_ENDIAN);
                readFully(ch, z64, z, path);
                if (z64.getInt(0) != 0x06064b50) throw new FormatException(path + ": bad ZIP64 end of central directory");
                count = z64.getLong(32);
                cdSize = z64.getLong(40);
                cdOffset = z64.getLong(48);
            }
            if (cdOffset < 0 || cdSize < 0 || cdOffset > size || cdSize > size - cdOffset || cdSize > 64L << 20 || count < 0 || count > 10_000_000) {
                throw new FormatException(path + ": the zip directory points outside the file");
            }
            ByteBuffer cd = ByteBuffer.allocate((int) cdSize).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, cd, cdOffset, path);
            Map<String, Entry> entries = new LinkedHashMap<>();
            int p = 0;
            for (long i = 0; i < count; i++) {
                if (p + 46 > cdSize || cd.getInt(p) != 0x02014b50) throw new FormatException(path + ": damaged zip directory");
                int method = cd.getShort(p + 10) & 0xffff;
                long comp = cd.getInt(p + 20) & 0xffffffffL, uncomp = cd.getInt(p + 24) & 0xffffffffL;
                int nameLen = cd.getShort(p + 28) & 0xffff, extraLen = cd.getShort(p + 30) & 0xffff, commentLen = cd.getShort(p + 32) & 0xffff;
                long local = cd.getInt(p + 42) & 0xffffffffL;
                if (p + 46L + nameLen + extraLen + commentLen > cdSize) throw new FormatException(path + ": damaged zip directory");
                byte[] nb = new byte[nameLen];
                cd.get(p + 46, nb);
                String name = new String(nb, java.nio.charset.StandardCharsets.UTF_8);
                int x = p + 46 + nameLen, xe = x + extraLen;
                while (x + 4 <= xe) { // the ZIP64 extra field carries the sizes and offset that do not fit 32 bits
                    int id = cd.getShort(x) & 0xffff, len = cd.getShort(x + 2) & 0xffff;
                    if (id == 1) {
                        int q = x + 4;
                        if (uncomp == 0xffffffffL && q + 8 <= xe) { uncomp = cd.getLong(q); q += 8; }
                        if (comp == 0xffffffffL && q + 8 <= xe) { comp = cd.getLong(q); q += 8; }
                        if (local == 0xffffffffL && q + 8 <= xe) { local = cd.getLong(q); }
                    }
                    x += 4 + len;
                }
                p += 46 + nameLen + extraLen + commentLen;
                if (method != 0) throw new FormatException(path + ": entry " + name + " is compressed; torch.save stores tensors uncompressed");
                if (local < 0 || local > size - 30) throw new FormatException(path + ": entry " + name + " points outside the file");
                ByteBuffer lh = ByteBuffer.allocate(30).order(ByteOrder.LITTLE_ENDIAN);
                readFully(ch, lh, local, path);
                if (lh.getInt(0) != 0x04034b50) throw new FormatException(path + ": entry " + name + " has no local header");
                long start = local + 30 + (lh.getShort(26) & 0xffff) + (lh.getShort(28) & 0xffff);
                if (uncomp < 0 || uncomp > size - start) throw new FormatException(path + ": entry " + name + " runs past the end of the file (truncated?)");
                entries.put(name, new Entry(name, start, uncomp));
            }
            return entries;
        } catch (IOException e) {
            throw new FormatException(path + ": cannot read (" + e.getMessage() + ")");
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer b, long pos, Path path) {
        try {
            while (b.hasRemaining()) {
                int n = ch.read(b, pos);
                if (n < 0) throw new FormatException(path + ": unexpected end of file");
                pos += n;
            }
        } catch (IOException e) {
            throw new FormatException(path + ": cannot read (" + e.getMessage() + ")");
        }
    }

    @Override public Path path() { return path; }
    @Override public Map<String, TensorInfo> tensors() { return tensors; }
    @Override public long dataStart() { return 0; }

    @Override
    public ByteBuffer read(TensorInfo t, long offset, int length) {
        ByteBuffer b = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        readInto(t, offset, b);
        return b.flip();
    }

    @Override
    public void readInto(TensorInfo t, long offset, ByteBuffer dst) {
        if (offset < 0 || offset + dst.remaining() > t.byteSize()) {
            throw new IndexOutOfBoundsException(t.name() + ": read outside its " + t.byteSize() + " bytes");
        }
        readFully(ch, dst, t.begin() + offset, path);
    }

    @Override
    public void close() {
        try {
            ch.close();
        } catch (IOException ignored) {
            // read-only
        }
    }
}
