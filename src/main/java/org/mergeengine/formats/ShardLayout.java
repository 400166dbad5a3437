package org.mergeengine.formats;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.TreeMap;

/**
 * Where every output tensor goes: which shard and at which byte of it. Computed from names,
 * dtypes and shapes alone, before any data exists, so that workers can write tensors in any
 * order, in parallel, straight to their final place.
 */
public final class ShardLayout {
    public record Entry(String name, DType dtype, long[] shape) {
        public long byteSize() {
            long n = dtype.size();
            for (long d : shape) n *= d;
            return n;
        }
    }

    /** A tensor's place: shard index and absolute byte position of its data in that file. */
    public record Placement(int shard, long position, long byteSize) {}

    public static final class Shard {
        private final String fileName;
        private final List<Entry> entries;
        private final byte[] header;
        private final long fileSize;

        Shard(String fileName, List<Entry> entries, byte[] header, long fileSize) {
            this.fileName = fileName;
            this.entries = entries;
            this.header = header;
            this.fileSize = fileSize;
        }

        public String fileName() { return fileName; }
        public List<Entry> entries() { return entries; }
        /** The 8-byte length prefix followed by the padded JSON header. */
        public byte[] header() { return header; }
        public long fileSize() { return fileSize; }
    }

    private final List<Shard> shards;
    private final java.util.Map<String, Placement> placements;
    private final long totalSize;

    private ShardLayout(List<Shard> shards, java.util.Map<String, Placement> placements, long totalSize) {
        this.shards = shards;
        this.placements = placements;
        this.totalSize = totalSize;
    }

    /**
     * Fills shards in order; a shard is closed when the next tensor would take it past
     * {@code maxShardBytes} (so a shard exceeds the limit only by holding one over-sized tensor).
     * {@code maxShardBytes <= 0} means one shard. One shard is {@code <basename>.safetensors};
     * several are {@code <basename>-0000k-of-0000N.safetensors}.
     */
    public static ShardLayout plan(List<Entry> entries, long maxShardBytes, String basename) {
        List<List<Entry>> groups = new ArrayList<>();
        List<Entry> cur = new ArrayList<>();
        long curBytes = 0;
        for (Entry e : entries) {
            long b = e.byteSize();
            if (!cur.isEmpty() && maxShardBytes > 0 && curBytes + b > maxShardBytes) {
                groups.add(cur);
                cur = new ArrayList<>();
                curBytes = 0;
            }
            cur.add(e);
            curBytes += b;
        }
        if (!cur.isEmpty() || groups.isEmpty()) groups.add(cur);
        int n = groups.size();
        List<Shard> shards = new ArrayList<>();
        java.util.Map<String, Placement> placements = new java.util.HashMap<>();
        long total = 0;
        for (int i = 0; i < n; i++) {
            String file = n == 1 ? basename + ".safetensors"
                    : String.format("%s-%05d-of-%05d.safetensors", basename, i + 1, n);
            List<Entry> g = groups.get(i);
            byte[] header = header(g);
            long pos = header.length;
            for (Entry e : g) {
                placements.put(e.name(), new Placement(i, pos, e.byteSize()));
                pos += e.byteSize();
                total += e.byteSize();
            }
            shards.add(new Shard(file, Collections.unmodifiableList(g), header, pos));
        }
        return new ShardLayout(Collections.unmodifiableList(shards), placements, total);
    }

    static byte[] header(List<Entry> entries) {
        ObjectNode root = Json.MAPPER.createObjectNode();
        root.putObject("__metadata__").put("format", "pt");
        long off = 0;
        for (Entry e : entries) {
            ObjectNode t = root.putObject(e.name());
            t.put("dtype", e.dtype().safetensorsName());
            ArrayNode s = t.putArray("shape");
            for (long d : e.shape()) s.add(d);
            ArrayNode o = t.putArray("data_offsets");
            o.add(off);
            off += e.byteSize();
            o.add(off);
        }
        byte[] json;
        try {
            json = Json.MAPPER.writer().without(com.fasterxml.jackson.databind.SerializationFeature.INDENT_OUTPUT)
                    .writeValueAsString(root).getBytes(StandardCharsets.UTF_8);
        } catch (com.fasterxml.jackson.core.JsonProcessingException ex) {
            throw new IllegalStateException(ex);
        }
        // Pad with spaces so the data section starts 8-byte aligned: every element is then aligned to its size.
        int padded = (json.length + 7) / 8 * 8;
        byte[] out = new byte[8 + padded];
        java.nio.ByteBuffer.wrap(out).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(padded);
        System.arraycopy(json, 0, out, 8, json.length);
        for (int i = 8 + json.length; i < out.length; i++) out[i] = ' ';
        return out;
    }

    public List<Shard> shards() { return shards; }
    public Placement placement(String tensor) { return placements.get(tensor); }
    /** Sum of tensor byte sizes (the index's metadata.total_size). */
    public long totalSize() { return totalSize; }

    /** The model.safetensors.index.json content; null when there is one shard (HF writes no index then). */
    public ObjectNode index() {
        if (shards.size() == 1) return null;
        ObjectNode root = Json.MAPPER.createObjectNode();
        root.putObject("metadata").put("total_size", totalSize);
        ObjectNode map = root.putObject("weight_map");
        TreeMap<String, String> sorted = new TreeMap<>();
        for (Shard s : shards) for (Entry e : s.entries()) sorted.put(e.name(), s.fileName());
        sorted.forEach(map::put);
        return root;
    }
}
