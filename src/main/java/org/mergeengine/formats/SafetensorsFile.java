package org.mergeengine.formats;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A safetensors file, validated as the reference implementation does (header size, UTF-8 JSON,
 * contiguous offsets from 0 covering the whole buffer, byte sizes matching dtype x shape, exact
 * file length) before any tensor is read. Tensor bytes are read through memory-mapped windows;
 * where the filesystem refuses mmap, through positional reads.
 */
public final class SafetensorsFile implements TensorFile {
    public static final long MAX_HEADER = 100_000_000L;
    /** Windows start every 1 GiB and overlap by MAX_READ, so any read of at most MAX_READ fits one window. */
    static final long WINDOW_STRIDE = 1L << 30;
    public static final int MAX_READ = 256 << 20;
    /**
     * System property: "true" reads through memory-mapped windows. The default is positional reads:
     * measured faster here, and mapped pages would count as the process's resident memory (a merge
     * would appear to hold every input byte it touched).
     */
    public static final String MMAP_PROPERTY = "merge.engine.mmap";

    private final Path path;
    private final FileChannel channel;
    private final long fileSize;
    private final long dataStart;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;
    private final MappedByteBuffer[] windows;
    /** Reads go through mmapped windows: turned on by the property or {@link #enableMmap}, off again when the filesystem refuses a mapping. */
    private volatile boolean mmapOn;

    private SafetensorsFile(Path path, FileChannel channel, long fileSize, long dataStart,
                            Map<String, TensorInfo> tensors, Map<String, String> metadata) {
        this.path = path;
        this.channel = channel;
        this.fileSize = fileSize;
        this.dataStart = dataStart;
        this.tensors = tensors;
        this.metadata = metadata;
        long dataLen = fileSize - dataStart;
        this.windows = new MappedByteBuffer[(int) Math.max(1, (dataLen + WINDOW_STRIDE - 1) / WINDOW_STRIDE)];
        this.mmapOn = Boolean.getBoolean(MMAP_PROPERTY);
    }

    public static SafetensorsFile open(Path path) {
        FileChannel ch = openRead(path);
        try {
            return parse(path, ch);
        } catch (RuntimeException e) {
            closeQuietly(ch);
            throw e;
        }
    }

    private static SafetensorsFile parse(Path path, FileChannel ch) {
        try {
            long len = ch.size();
            if (len < 8) throw bad(path, "file is " + len + " bytes, too small for a safetensors header (HeaderTooSmall)");
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0);
            long n = checkLength(path, lenBuf.array(), len);
            ByteBuffer hb = ByteBuffer.allocate((int) n);
            readFully(ch, hb, 8);
            return validate(path, ch, len, n, hb.flip());
        } catch (IOException e) {
            throw new FormatException(path + ": cannot read (" + e.getMessage() + ")");
        }
    }

    /**
     * A file known by its header alone ({@code head} = the first 8 + N bytes, {@code fileSize} the
     * whole file's length): fully validated, for planning before the file is downloaded. Reading
     * tensor data from it fails.
     */
    public static SafetensorsFile fromHeader(Path label, byte[] head, long fileSize) {
        if (fileSize < 8 || head.length < 8) throw bad(label, "file is " + fileSize + " bytes, too small for a safetensors header (HeaderTooSmall)");
        long n = checkLength(label, java.util.Arrays.copyOf(head, 8), fileSize);
        if (head.length < 8 + n) throw bad(label, "header of " + n + " bytes not fully available");
        return validate(label, null, fileSize, n, ByteBuffer.wrap(head, 8, (int) n).slice());
    }

    private static long checkLength(Path path, byte[] first8, long len) {
        ByteBuffer lenBuf = ByteBuffer.wrap(first8).order(ByteOrder.LITTLE_ENDIAN);
        long n = lenBuf.getLong(0);
        if (looksLikeLfsPointer(lenBuf)) {
            throw bad(path, "this is a git-lfs pointer file, not the weights; fetch the real file (git lfs pull)");
        }
        if (n < 0 || n > MAX_HEADER) throw bad(path, "header length " + Long.toUnsignedString(n) + " exceeds the limit of " + MAX_HEADER + " bytes (HeaderTooLarge)");
        if (8 + n > len) throw bad(path, "header length " + n + " runs past the end of the " + len + "-byte file (InvalidHeaderLength)");
        return n;
    }

    private static SafetensorsFile validate(Path path, FileChannel ch, long len, long n, ByteBuffer hb) {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(hb).toString();
        } catch (CharacterCodingException e) {
            throw bad(path, "header is not valid UTF-8 (InvalidHeader)");
        }
        String trimmed = text.stripLeading();
        if (!trimmed.startsWith("{")) throw bad(path, "header does not start with '{' (InvalidHeaderStart)");
        JsonNode root;
        try {
            root = Json.MAPPER.readTree(text);
        } catch (IOException e) {
            throw bad(path, "header is not valid JSON: " + Json.firstLine(e instanceof com.fasterxml.jackson.core.JsonProcessingException jp ? jp.getOriginalMessage() : e.getMessage()) + " (InvalidHeaderDeserialization)");
        }
        if (root == null || !root.isObject()) throw bad(path, "header is not a JSON object (InvalidHeaderDeserialization)");
        Map<String, String> metadata = new LinkedHashMap<>();
        List<TensorInfo> list = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (e.getKey().equals("__metadata__")) {
                if (!e.getValue().isObject()) throw bad(path, "__metadata__ must be an object of strings (InvalidHeaderDeserialization)");
                for (Iterator<Map.Entry<String, JsonNode>> m = e.getValue().fields(); m.hasNext(); ) {
                    Map.Entry<String, JsonNode> me = m.next();
                    if (!me.getValue().isTextual()) throw bad(path, "__metadata__." + me.getKey() + " must be a string (InvalidHeaderDeserialization)");
                    metadata.put(me.getKey(), me.getValue().asText());
                }
                continue;
            }
            list.add(parseEntry(path, e.getKey(), e.getValue()));
        }
        list.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        long expect = 0;
        for (TensorInfo t : list) {
            if (t.begin() != expect || t.end() < t.begin()) {
                throw bad(path, "tensor '" + t.name() + "' has data_offsets [" + t.begin() + ", " + t.end()
                        + "] but the previous tensor ends at " + expect + "; offsets must be contiguous from 0 without overlap (InvalidOffset)");
            }
            long bytes;
            try {
                long numel = 1;
                for (long d : t.shape()) numel = Math.multiplyExact(numel, d);
                bytes = Math.multiplyExact(numel, (long) t.dtype().size());
            } catch (ArithmeticException ex) {
                throw bad(path, "tensor '" + t.name() + "' shape " + t.shapeString() + " overflows (ValidationOverflow)");
            }
            if (t.end() - t.begin() != bytes) {
                throw bad(path, "tensor '" + t.name() + "' (" + t.dtype().safetensorsName() + " " + t.shapeString() + ") needs "
                        + bytes + " bytes but its data_offsets span " + (t.end() - t.begin()) + " (TensorInvalidInfo)");
            }
            expect = t.end();
        }
        if (8 + n + expect != len) {
            throw bad(path, "header describes " + (8 + n + expect) + " bytes but the file has " + len
                    + (len < 8 + n + expect ? " (truncated: download it again)" : " (trailing bytes)") + " (MetadataIncompleteBuffer)");
        }
        Map<String, TensorInfo> byName = new LinkedHashMap<>();
        for (TensorInfo t : list) byName.put(t.name(), t);
        return new SafetensorsFile(path, ch, len, 8 + n, Collections.unmodifiableMap(byName), Collections.unmodifiableMap(metadata));
    }

    private static TensorInfo parseEntry(Path path, String name, JsonNode v) {
        if (!v.isObject()) throw bad(path, "tensor '" + name + "': entry is not an object (InvalidHeaderDeserialization)");
        JsonNode dt = v.get("dtype"), shape = v.get("shape"), off = v.get("data_offsets");
        if (dt == null || !dt.isTextual()) throw bad(path, "tensor '" + name + "': missing or non-string dtype (InvalidHeaderDeserialization)");
        DType dtype = DType.fromSafetensors(dt.asText());
        if (dtype == null) throw bad(path, "tensor '" + name + "': dtype '" + dt.asText() + "' is not supported (supported: F64 F32 F16 BF16 F8_E4M3 F8_E5M2 I64 I32 I16 I8 U8 BOOL)");
        if (shape == null || !shape.isArray()) throw bad(path, "tensor '" + name + "': missing shape (InvalidHeaderDeserialization)");
        long[] s = new long[shape.size()];
        for (int i = 0; i < s.length; i++) {
            JsonNode d = shape.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0) throw bad(path, "tensor '" + name + "': shape " + shape + " must hold non-negative integers (InvalidHeaderDeserialization)");
            s[i] = d.asLong();
        }
        if (off == null || !off.isArray() || off.size() != 2) throw bad(path, "tensor '" + name + "': data_offsets must be [begin, end] (InvalidHeaderDeserialization)");
        for (JsonNode o : off) {
            if (!o.isIntegralNumber() || !o.canConvertToLong() || o.asLong() < 0) throw bad(path, "tensor '" + name + "': data_offsets " + off + " must be non-negative integers (InvalidHeaderDeserialization)");
        }
        return new TensorInfo(name, dtype, s, off.get(0).asLong(), off.get(1).asLong());
    }

    private static boolean looksLikeLfsPointer(ByteBuffer first8) {
        byte[] b = new byte[8];
        first8.duplicate().position(0).get(b);
        return new String(b, StandardCharsets.US_ASCII).startsWith("version ");
    }

    private static FormatException bad(Path path, String msg) {
        return new FormatException(path + ": not a valid safetensors file: " + msg);
    }

    private static void readFully(FileChannel ch, ByteBuffer dst, long pos) throws IOException {
        while (dst.hasRemaining()) {
            int r = ch.read(dst, pos);
            if (r < 0) throw new IOException("unexpected end of file");
            pos += r;
        }
    }

    public Path path() { return path; }
    public Map<String, TensorInfo> tensors() { return tensors; }
    public Map<String, String> metadata() { return metadata; }
    public long fileSize() { return fileSize; }
    public long dataStart() { return dataStart; }

    /**
     * Bytes {@code [offset, offset+length)} of a tensor's data, little-endian, positioned at 0.
     * The buffer may be a view of a shared mapping: read it, do not keep it.
     */
    public ByteBuffer read(TensorInfo t, long offset, int length) {
        if (channel == null) throw new IllegalStateException(path + " is known by its header only");
        if (offset < 0 || length < 0 || offset + length > t.byteSize()) {
            throw new IndexOutOfBoundsException(t.name() + ": read [" + offset + ", +" + length + ") outside " + t.byteSize() + " bytes");
        }
        long pos = t.begin() + offset; // relative to data start
        if (length <= MAX_READ && mmapOn) {
            int w = (int) (pos / WINDOW_STRIDE);
            long wStart = (long) w * WINDOW_STRIDE;
            MappedByteBuffer win = window(w);
            if (win != null) {
                return win.slice((int) (pos - wStart), length).order(ByteOrder.LITTLE_ENDIAN);
            }
        }
        ByteBuffer dst = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        try {
            readFully(channel, dst, dataStart + pos);
        } catch (IOException e) {
            throw new FormatException(path + ": reading tensor '" + t.name() + "' failed (" + e.getMessage() + ")");
        }
        return dst.flip();
    }

    /** Whether {@link #read} returns views of mapped memory (else callers should use {@link #readInto}). */
    public boolean mapped() {
        return mmapOn;
    }

    /** Reads bytes {@code [offset, offset + dst.remaining())} of a tensor's data into {@code dst} (best with a direct buffer). */
    public void readInto(TensorInfo t, long offset, ByteBuffer dst) {
        if (channel == null) throw new IllegalStateException(path + " is known by its header only");
        int length = dst.remaining();
        if (offset < 0 || offset + length > t.byteSize()) {
            throw new IndexOutOfBoundsException(t.name() + ": read [" + offset + ", +" + length + ") outside " + t.byteSize() + " bytes");
        }
        try {
            readFully(channel, dst, dataStart + t.begin() + offset);
        } catch (IOException e) {
            throw new FormatException(path + ": reading tensor '" + t.name() + "' failed (" + e.getMessage() + ")");
        }
    }

    /** Reads through memory-mapped windows from now on (where the filesystem allows). */
    public void enableMmap() {
        mmapOn = true;
    }

    private MappedByteBuffer window(int w) {
        MappedByteBuffer m = windows[w];
        if (m != null) return m;
        synchronized (windows) {
            if (windows[w] != null) return windows[w];
            long start = (long) w * WINDOW_STRIDE;
            long len = Math.min(WINDOW_STRIDE + MAX_READ, fileSize - dataStart - start);
            try {
                windows[w] = channel.map(FileChannel.MapMode.READ_ONLY, dataStart + start, Math.max(0, len));
            } catch (IOException | UnsupportedOperationException e) {
                // Some filesystems (FUSE, network mounts) refuse mmap with ENODEV; plain reads still work.
                mmapOn = false;
                return null;
            }
            return windows[w];
        }
    }

    /** For tests: behave as on a filesystem that refuses mmap. */
    public void disableMmap() {
        mmapOn = false;
    }

    @Override
    public void close() {
        closeQuietly(channel);
    }

    /** Opens a file for reading; failure is the user's (a missing or unreadable file), named. */
    static FileChannel openRead(Path path) {
        try {
            return FileChannel.open(path, StandardOpenOption.READ);
        } catch (IOException e) {
            throw new FormatException(path + ": cannot open (" + e.getMessage() + ")");
        }
    }

    static void closeQuietly(FileChannel ch) {
        if (ch == null) return;
        try {
            ch.close();
        } catch (IOException ignored) {
            // nothing was written through this channel
        }
    }
}
