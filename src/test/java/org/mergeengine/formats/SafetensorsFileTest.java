package org.mergeengine.formats;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.tensor.Convert;

/** The safetensors reader's validation, after the reference implementation's own negative tests. */
class SafetensorsFileTest {
    @TempDir
    Path dir;

    Path file(String header, int dataBytes) throws Exception {
        return file(header.getBytes(StandardCharsets.UTF_8), new byte[dataBytes]);
    }

    Path file(byte[] header, byte[] data) throws Exception {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        byte[] len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length).array();
        b.write(len);
        b.write(header);
        b.write(data);
        Path p = dir.resolve("t" + System.nanoTime() + ".safetensors");
        Files.write(p, b.toByteArray());
        return p;
    }

    static String err(Path p) {
        FormatException e = assertThrows(FormatException.class, () -> SafetensorsFile.open(p).close());
        assertTrue(e.getMessage().contains(p.toString()), "the message names the file: " + e.getMessage());
        return e.getMessage();
    }

    @Test
    void roundTripWithAlignmentAndMetadata() throws Exception {
        Path p = dir.resolve("m.safetensors");
        float[] v = {1, -2.5f, 3.25f, 1e-3f, 0, 7};
        SafetensorsWriter.writeFile(p, List.of(
                Convert.tensorData("a", DType.BF16, new long[] {2, 3}, v),
                Convert.tensorData("b", DType.F32, new long[] {6}, v),
                Convert.tensorData("c", DType.F16, new long[] {0, 4}, new float[0])));
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            f.enableMmap();
            assertTrue(f.mapped());
            assertEquals("pt", f.metadata().get("format"));
            assertEquals(0, f.dataStart() % 8, "header padded to 8 bytes");
            TensorInfo b = f.tensors().get("b");
            float[] got = new float[6];
            Convert.decode(DType.F32, f.read(b, 0, 24), got, 0, 6);
            assertArrayEquals(v, got);
            TensorInfo a = f.tensors().get("a");
            Convert.decode(DType.BF16, f.read(a, 0, 12), got, 0, 6);
            assertEquals(-2.5f, got[1]);
            assertEquals(0, f.tensors().get("c").numel(), "zero-sized tensors are allowed");
            f.disableMmap();
            Convert.decode(DType.F32, f.read(b, 8, 8), got, 0, 2);
            assertEquals(3.25f, got[0], "plain reads work where mmap is refused");
            ByteBuffer direct = ByteBuffer.allocateDirect(8).order(ByteOrder.LITTLE_ENDIAN);
            f.readInto(b, 12, direct);
            assertEquals(0.001f, direct.flip().getFloat(0), 1e-9f);
        }
    }

    @Test
    void headerTooSmall() throws Exception {
        Path p = dir.resolve("small.safetensors");
        Files.write(p, new byte[] {1, 2, 3});
        assertTrue(err(p).contains("HeaderTooSmall"));
    }

    @Test
    void headerTooLarge() throws Exception {
        Path p = dir.resolve("large.safetensors");
        Files.write(p, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(100_000_001L).array());
        assertTrue(err(p).contains("HeaderTooLarge"));
        Files.write(p, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 60).array());
        assertTrue(err(p).contains("HeaderTooLarge"), "a header claiming 2^60 bytes is refused without allocating");
    }

    @Test
    void invalidHeaderLength() throws Exception {
        Path p = dir.resolve("len.safetensors");
        Files.write(p, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1000).array());
        assertTrue(err(p).contains("InvalidHeaderLength"));
    }

    @Test
    void nonUtf8AndNotJson() throws Exception {
        assertTrue(err(file(new byte[] {'{', (byte) 0xff, (byte) 0xfe, '}'}, new byte[0])).contains("UTF-8"));
        assertTrue(err(file("{\"a\": [}", 0)).contains("JSON"));
        assertTrue(err(file("[1,2]   ", 0)).contains("'{'"));
    }

    @Test
    void whitespacePaddedHeadersAreAccepted() throws Exception {
        try (SafetensorsFile f = SafetensorsFile.open(file("  {\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}   ", 4))) {
            assertEquals(1, f.tensors().size());
        }
    }

    @Test
    void jsonAttackManyTensorsOnOneRange() throws Exception {
        StringBuilder h = new StringBuilder("{");
        for (int i = 0; i < 10; i++) h.append(i == 0 ? "" : ",").append("\"t").append(i).append("\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}");
        h.append('}');
        String m = err(file(h.toString(), 8));
        assertTrue(m.contains("InvalidOffset") && m.contains("'t"), m);
    }

    @Test
    void gapsAndOverlapsAreRejected() throws Exception {
        assertTrue(err(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8)).contains("InvalidOffset"));
        assertTrue(err(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12))
                .contains("InvalidOffset"));
    }

    @Test
    void metadataIncompleteBuffer() throws Exception {
        String h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        String trailing = err(file(h, 10));
        assertTrue(trailing.contains("MetadataIncompleteBuffer") && trailing.contains("trailing"), trailing);
        String truncated = err(file(h, 6));
        assertTrue(truncated.contains("MetadataIncompleteBuffer") && truncated.contains("truncated"), truncated);
    }

    @Test
    void invalidInfoAndOverflow() throws Exception {
        String m = err(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8));
        assertTrue(m.contains("TensorInvalidInfo") && m.contains("'a'"), m);
        assertTrue(err(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904, 4611686018427387904],\"data_offsets\":[0,8]}}", 8))
                .contains("ValidationOverflow"));
        assertTrue(err(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4)).contains("shape"));
        assertTrue(err(file("{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4)).contains("Q4"));
        assertTrue(err(file("{\"__metadata__\":{\"format\":1}}", 0)).contains("__metadata__"));
    }

    @Test
    void gitLfsPointerGetsItsOwnMessage() throws Exception {
        Path p = dir.resolve("lfs.safetensors");
        Files.writeString(p, "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n");
        assertTrue(err(p).contains("git-lfs"));
    }

    @Test
    void shardedLayoutAndIndex() {
        List<ShardLayout.Entry> e = List.of(new ShardLayout.Entry("a", DType.F32, new long[] {4}),
                new ShardLayout.Entry("b", DType.F32, new long[] {4}), new ShardLayout.Entry("c", DType.F32, new long[] {100}),
                new ShardLayout.Entry("d", DType.BF16, new long[] {2}));
        ShardLayout l = ShardLayout.plan(e, 32, "model");
        assertEquals(3, l.shards().size(), "a shard closes before it would pass the limit; an oversized tensor gets its own");
        assertEquals("model-00001-of-00003.safetensors", l.shards().get(0).fileName());
        assertEquals(436, l.totalSize());
        assertEquals("model-00002-of-00003.safetensors", l.index().get("weight_map").get("c").asText());
        assertEquals(436, l.index().get("metadata").get("total_size").asLong());
        ShardLayout one = ShardLayout.plan(e, 0, "model");
        assertEquals("model.safetensors", one.shards().get(0).fileName());
        assertEquals(null, one.index(), "a single shard has no index");
    }

    @Test
    void symlinksOutOfAModelFolderAreNotFollowed() throws Exception {
        Path outside = dir.resolve("outside.safetensors");
        SafetensorsWriter.writeFile(outside, List.of(Convert.tensorData("a", DType.F32, new long[] {1}, new float[] {1})));
        Path model = java.nio.file.Files.createDirectories(dir.resolve("model"));
        java.nio.file.Files.createSymbolicLink(model.resolve("model.safetensors"), outside);
        FormatException e = assertThrows(FormatException.class, () -> ModelFolder.open(model));
        assertTrue(e.getMessage().contains("outside"), e.getMessage());
        java.nio.file.Files.delete(model.resolve("model.safetensors"));
        java.nio.file.Files.copy(outside, model.resolve("real.safetensors"));
        java.nio.file.Files.createSymbolicLink(model.resolve("model.safetensors"), java.nio.file.Path.of("real.safetensors"));
        try (ModelFolder m = ModelFolder.open(model)) {
            assertEquals(1, m.tensors().size(), "a link inside the folder is fine");
        }
    }

    @Test
    void tensorsPastTwoGibReadThroughMmapWindows() throws Exception {
        // A sparse file: one F32 tensor of 2.25 GiB, with values planted around the 2 GiB mark.
        long n = (9L << 30) / 16 + 1024; // elements: just over 2.25 GiB of F32
        String header = "{\"big\":{\"dtype\":\"F32\",\"shape\":[" + n + "],\"data_offsets\":[0," + (4 * n) + "]}}";
        while ((header.length() + 8) % 8 != 0) header += " ";
        Path p = dir.resolve("big.safetensors");
        long dataStart = 8 + header.length();
        long[] planted = {0, (1L << 29) - 1, (1L << 29) + 3, (1L << 29) + (1L << 25) + 12345, n - 1}; // element 2^29 is byte 2 GiB
        try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(p, java.nio.file.StandardOpenOption.CREATE,
                java.nio.file.StandardOpenOption.WRITE)) {
            ByteBuffer h = ByteBuffer.allocate((int) dataStart).order(ByteOrder.LITTLE_ENDIAN);
            h.putLong(header.length()).put(header.getBytes(StandardCharsets.UTF_8)).flip();
            ch.write(h, 0);
            for (long i : planted) {
                ByteBuffer v = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(0, i % 1000 + 0.5f);
                ch.write(v, dataStart + 4 * i);
            }
        }
        assertEquals(dataStart + 4 * n, Files.size(p));
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            f.enableMmap();
            TensorInfo t = f.tensors().get("big");
            for (long i : planted) {
                float[] got = new float[1];
                Convert.decode(DType.F32, f.read(t, 4 * i, 4), got, 0, 1);
                assertEquals(i % 1000 + 0.5f, got[0], "element " + i);
            }
            // a read that straddles the 2 GiB mark inside one window, and one larger than a window allows
            ByteBuffer across = f.read(t, (2L << 30) - 64, 128);
            assertEquals(128, across.remaining());
            long p3 = (1L << 29) + 3;
            ByteBuffer large = f.read(t, 4 * p3 - 4, SafetensorsFile.MAX_READ + 8);
            assertEquals(p3 % 1000 + 0.5f, large.order(ByteOrder.LITTLE_ENDIAN).getFloat(4));
        }
    }
}
