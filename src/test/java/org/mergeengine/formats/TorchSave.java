package org.mergeengine.formats;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;
import org.mergeengine.tensor.Convert;

/** Writes checkpoints in torch.save's zip format (protocol-2 pickle, stored entries), as PyTorch does, for tests. */
final class TorchSave {
    record T(DType dtype, long[] shape, float[] values, long[] stride) {
        T(DType dtype, long[] shape, float[] values) {
            this(dtype, shape, values, null);
        }
    }

    static final Map<DType, String> STORAGE = Map.of(DType.F32, "FloatStorage", DType.F16, "HalfStorage", DType.BF16, "BFloat16Storage", DType.I64, "LongStorage");

    static class Pickle {
        final ByteArrayOutputStream o = new ByteArrayOutputStream();

        Pickle op(int c) {
            o.write(c);
            return this;
        }

        Pickle str(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            o.write('X');
            o.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(b.length).array());
            o.writeBytes(b);
            return this;
        }

        Pickle integer(long v) {
            o.write('J');
            o.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt((int) v).array());
            return this;
        }

        Pickle global(String module, String name) {
            o.write('c');
            o.writeBytes((module + "\n" + name + "\n").getBytes(StandardCharsets.US_ASCII));
            return this;
        }

        Pickle tuple(long... v) {
            op('(');
            for (long x : v) integer(x);
            return op('t');
        }
    }

    static byte[] pickle(Map<String, T> tensors, boolean asParameters) {
        Pickle p = new Pickle();
        p.op(0x80).op(2).global("collections", "OrderedDict").op(')').op('R').op('(');
        int key = 0;
        for (Map.Entry<String, T> e : tensors.entrySet()) {
            T t = e.getValue();
            long[] stride = t.stride() != null ? t.stride() : contiguous(t.shape());
            p.str(e.getKey());
            if (asParameters) p.global("torch._utils", "_rebuild_parameter").op('(');
            p.global("torch._utils", "_rebuild_tensor_v2").op('(');
            p.op('(').str("storage").global("torch", STORAGE.get(t.dtype())).str(Integer.toString(key++)).str("cpu").integer(t.values().length).op('t').op('Q');
            p.integer(0).tuple(t.shape()).tuple(stride).op(0x89).global("collections", "OrderedDict").op(')').op('R').op('t').op('R');
            if (asParameters) p.op(0x89).global("collections", "OrderedDict").op(')').op('R').op('t').op('R');
        }
        p.op('u').op('.');
        return p.o.toByteArray();
    }

    static long[] contiguous(long[] shape) {
        long[] s = new long[shape.length];
        long acc = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            s[i] = acc;
            acc *= shape[i];
        }
        return s;
    }

    static void save(Path file, Map<String, T> tensors, boolean asParameters) throws Exception {
        Map<String, byte[]> entries = new LinkedHashMap<>();
        entries.put("archive/data.pkl", pickle(tensors, asParameters));
        int key = 0;
        for (T t : tensors.values()) {
            ByteBuffer b = ByteBuffer.allocate(t.values().length * t.dtype().size());
            Convert.encode(t.dtype(), t.values(), 0, t.values().length, b);
            entries.put("archive/data/" + key++, b.array());
        }
        entries.put("archive/version", "3\n".getBytes(StandardCharsets.US_ASCII));
        writeZip(file, entries);
    }

    static void writeZip(Path file, Map<String, byte[]> entries) throws Exception {
        try (OutputStream os = Files.newOutputStream(file); ZipOutputStream z = new ZipOutputStream(os)) {
            for (Map.Entry<String, byte[]> e : entries.entrySet()) {
                ZipEntry ze = new ZipEntry(e.getKey());
                ze.setMethod(ZipEntry.STORED);
                ze.setSize(e.getValue().length);
                ze.setCompressedSize(e.getValue().length);
                CRC32 c = new CRC32();
                c.update(e.getValue());
                ze.setCrc(c.getValue());
                z.putNextEntry(ze);
                z.write(e.getValue());
                z.closeEntry();
            }
        }
    }
}
