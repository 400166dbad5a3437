package org.mergeengine.formats;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Map;

/** A file of tensors whose bytes can be read by range: a safetensors file, or a PyTorch .bin archive. */
public interface TensorFile extends AutoCloseable {
    Path path();

    /** Every tensor, with data offsets relative to {@link #dataStart()}. */
    Map<String, TensorInfo> tensors();

    long dataStart();

    /** Bytes {@code [offset, offset+length)} of a tensor's data, little-endian. */
    ByteBuffer read(TensorInfo t, long offset, int length);

    /** Reads bytes of a tensor's data into {@code dst} (from its position to its limit). */
    void readInto(TensorInfo t, long offset, ByteBuffer dst);

    /** Whether {@link #read} returns views of mapped memory. */
    default boolean mapped() {
        return false;
    }

    @Override
    void close();
}
