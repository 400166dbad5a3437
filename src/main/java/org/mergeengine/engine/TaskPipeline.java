package org.mergeengine.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.function.Supplier;
import java.util.zip.CRC32;
import org.apache.pekko.Done;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;
import org.mergeengine.MergeException;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.methods.Chunk;
import org.mergeengine.methods.KernelTraits;
import org.mergeengine.methods.TensorKernel;
import org.mergeengine.plan.PlannedTensor;
import org.mergeengine.tensor.Convert;

/**
 * Runs one task (a tensor, or a part of one) as a stream of chunks: loads run ahead of the kernel
 * on the I/O executor (at most {@link Sizing#PREFETCH} chunks), the kernel computes, writes go to
 * the tensor's planned place. Backpressure keeps at most a few chunks of this tensor in memory at
 * once. The kernel is built here, once, when the task runs; how the tensor is chunked comes from
 * the method's {@link KernelTraits} and the engine's {@link Sizing}.
 */
final class TaskPipeline {
    private static final int PREFETCH = Sizing.PREFETCH;

    private final PlannedTensor tensor;
    private final KernelTraits traits;
    private final SafetensorsWriter writer;
    private final Sizing sizing;
    private final Executor io;
    private final InputReader reader = new InputReader();
    private final BufferPool pool;
    private int chunkLen;

    private final long from, to;
    private final CRC32 crc = new CRC32();
    private Journal journal;

    private Device device = Device.cpu(0);

    /** Runs the kernel that {@code d} provides for the tensor. */
    TaskPipeline on(Device d) {
        this.device = d;
        return this;
    }

    /** Records the finished part in the journal (with the CRC32 of its bytes, in order). */
    TaskPipeline journal(Journal j) {
        this.journal = j;
        return this;
    }

    /** The CRC32 of the bytes this task wrote, in order (complete once {@link #run} has finished). */
    long crc() {
        return crc.getValue();
    }

    private Encoded checksum(Encoded e) {
        crc.update(e.bytes().duplicate());
        return e;
    }

    private <T> CompletionStage<T> recorded(CompletionStage<T> done) {
        return done.handle((d, err) -> {
            if (err != null) {
                Throwable c = MergeException.unwrap(err);
                if (c instanceof OutOfMemoryError oom) throw outOfMemory(oom);
                throw err instanceof CompletionException ce ? ce : new CompletionException(err);
            }
            if (journal != null) journal.finished(tensor.name(), from, to, crc.getValue());
            return d;
        });
    }

    /**
     * Runs a step of the stream, turning an OutOfMemoryError into the error a user can act on: thrown
     * on an actor thread as it is, it would stop the JVM with a stack trace and no word of what to do.
     */
    private <T> T guarded(Supplier<T> step) {
        try {
            return step.get();
        } catch (OutOfMemoryError e) {
            throw outOfMemory(e);
        }
    }

    private MergeException outOfMemory(OutOfMemoryError e) {
        long need = traits.wholeTensor() ? tensor.numel() * 4L * (tensor.inputs().size() + 1) : 0;
        String what = traits.wholeTensor()
                ? ", which holds whole tensors in memory: " + gib(need) + " for the " + tensor.inputs().size() + " inputs and the output as float32"
                : "";
        return new MergeException(MergeException.Kind.USER, "out of memory merging " + tensor.name() + " (" + tensor.numel() + " elements, "
                + tensor.method().name() + what + "): the JVM's heap is " + gib(Runtime.getRuntime().maxMemory())
                + ". Give it more with JAVA_OPTS=-Xmx<size>" + (need > 0 ? " (at least " + gib(2 * need) + " for this tensor)" : "")
                + ", or merge with fewer --workers or a smaller --max-memory, so that fewer tensors are in memory at once", e);
    }

    private static String gib(long bytes) {
        return String.format(Locale.ROOT, "%.1f GiB", bytes / (double) (1L << 30));
    }

    /** A task for elements [from, to) of the tensor (all of them, or a part of a tensor split across lanes). */
    TaskPipeline(PlannedTensor tensor, long from, long to, SafetensorsWriter writer, Sizing sizing, Executor io, BufferPool pool) {
        this.from = from;
        this.to = to;
        this.sizing = sizing;
        this.pool = pool;
        this.tensor = tensor;
        this.traits = Sizing.traits(tensor);
        this.writer = writer;
        this.io = io;
    }

    CompletionStage<Done> run(Materializer mat) {
        long n = tensor.numel();
        long chunk = sizing.chunkLength(tensor, traits);
        if (chunk > Integer.MAX_VALUE - 16) {
            throw new MergeException(MergeException.Kind.USER, "tensor " + tensor.name() + " has " + n + " elements, more than "
                    + tensor.method().name() + " can hold at once (it needs the whole tensor in memory)");
        }
        List<long[]> ranges = new ArrayList<>();
        for (long s = from; s < to; s += chunk) ranges.add(new long[] {s, Math.min(chunk, to - s)});
        chunkLen = (int) Math.min(chunk, n);
        if ((from != 0 || to != n) && !traits.splittable()) throw new IllegalStateException(tensor.name() + " cannot be split");
        if (n == 0 || from >= to) return CompletableFuture.completedFuture(Done.getInstance());

        if (traits.identity() && canCopyBytes()) return recorded(copyBytes(mat, ranges));

        TensorKernel kernel = device.kernel(tensor);
        if (sizing.retains(tensor, traits)) return recorded(runInMemory(mat, kernel, ranges));

        CompletionStage<Done> stage = CompletableFuture.completedFuture(Done.getInstance());
        for (int p = 0; p < traits.reductionPasses(); p++) {
            final int pass = p;
            stage = stage.thenCompose(d -> Source.from(ranges)
                    .mapAsync(PREFETCH, r -> load(r))
                    .runWith(Sink.foreach(c -> guarded(() -> {
                        kernel.reduce(pass, c);
                        release(c);
                        return c;
                    })), mat)
                    .thenApply(x -> {
                        kernel.endPass(pass);
                        return x;
                    }));
        }
        if (readsRaw()) {
            int tile = tileLength();
            return recorded(stage.thenCompose(d -> Source.from(ranges)
                    .mapAsync(PREFETCH, r -> loadRaw(r))
                    .map(raw -> guarded(() -> checksum(computeTiles(kernel, raw, tile))))
                    .mapAsync(PREFETCH, e -> CompletableFuture.supplyAsync(() -> write(e), writer.executorFor(tensor.name())))
                    .runWith(Sink.ignore(), mat)));
        }
        return recorded(stage.thenCompose(d -> Source.from(ranges)
                .mapAsync(PREFETCH, r -> load(r))
                .map(c -> guarded(() -> checksum(computeAndEncode(kernel, c))))
                .mapAsync(PREFETCH, e -> CompletableFuture.supplyAsync(() -> write(e), writer.executorFor(tensor.name())))
                .runWith(Sink.ignore(), mat)));
    }

    /**
     * Elements per tile of the fused decode, kernel and encode: small enough that a tile's inputs,
     * output and scratch stay in the core's cache. Decoding whole chunks first and encoding them
     * after made every step a pass through main memory, which cost more than the math itself.
     */
    static final int TILE = 8192;

    private int tileLength() {
        long a = traits.alignment();
        long t = Math.max(a, Math.min(device.tileElements(), Integer.MAX_VALUE / 2) / a * a);
        return (int) Math.min(t, chunkLen);
    }

    /**
     * Whether the output pass reads raw input bytes and decodes them tile by tile: every input is
     * stored as is (no LoRA update, crop or rebuilt vocabulary rows), the kernel is elementwise and
     * its alignment leaves tiles of cache size. Kernels with reduction passes keep decoding on the
     * I/O threads: such a tensor cannot be split across lanes, so when the last large one runs
     * alone, decoding beside its kernel keeps a second core busy (tiles showed no gain there).
     */
    private boolean readsRaw() {
        if (!traits.splittable() || traits.alignment() > TILE * 4L) return false;
        for (PlannedTensor.Input in : tensor.inputs()) {
            if (in.rows() != null || in.cropped() || in.source().delta() != null) return false;
        }
        return true;
    }

    /** A chunk's input bytes as stored; {@code pooled} marks buffers that go back to the pool (not mapped views). */
    private record Raw(long start, int length, ByteBuffer[] bytes, boolean[] pooled) {}

    private CompletionStage<Raw> loadRaw(long[] r) {
        return CompletableFuture.supplyAsync(() -> {
            int len = (int) r[1];
            int n = tensor.inputs().size();
            ByteBuffer[] bytes = new ByteBuffer[n];
            boolean[] pooled = new boolean[n];
            for (int i = 0; i < n; i++) {
                ModelFolder.Located src = tensor.inputs().get(i).source();
                int es = src.info().dtype().size();
                if (src.file().mapped()) {
                    bytes[i] = src.file().read(src.info(), r[0] * es, len * es).order(ByteOrder.LITTLE_ENDIAN);
                } else {
                    ByteBuffer b = pool.bytes(chunkLen * es);
                    b.limit(len * es);
                    src.file().readInto(src.info(), r[0] * es, b);
                    b.flip();
                    bytes[i] = b;
                    pooled[i] = true;
                }
            }
            return new Raw(r[0], len, bytes, pooled);
        }, io);
    }

    private static final class Tiles {
        float[][] in = new float[0][];
        float[] out = new float[0];

        Tiles ensure(int inputs, int tile) {
            if (in.length != inputs || out.length < tile) {
                in = new float[inputs][tile];
                out = new float[tile];
            }
            return this;
        }
    }

    private static final ThreadLocal<Tiles> TILES = ThreadLocal.withInitial(Tiles::new);

    /**
     * Whether tiles go through the kernel split by element parity ({@link Convert#decodeBf16Split}),
     * which converts bf16 about twice as fast: the common case of bf16 models merged into bf16 by a
     * kernel to which element order means nothing.
     */
    private boolean splitsBf16() {
        if (!traits.elementwise() || tensor.outDType() != DType.BF16) return false;
        for (PlannedTensor.Input in : tensor.inputs()) if (in.source().info().dtype() != DType.BF16) return false;
        return true;
    }

    /** Decodes, merges and encodes a chunk one tile at a time, straight from the input bytes into the output bytes. */
    private Encoded computeTiles(TensorKernel kernel, Raw raw, int tile) {
        DType out = tensor.outDType();
        int n = raw.bytes().length;
        Tiles t = TILES.get().ensure(n, tile);
        ByteBuffer dst = takeBytes(out);
        // The split scratch grows with the tile: lanes that take whole chunks (DJL) keep element order.
        boolean split = device.tileElements() <= TILE && tile <= TILE && splitsBf16();
        for (int s = 0; s < raw.length(); s += tile) {
            int len = Math.min(tile, raw.length() - s);
            tile(kernel, raw, t, s, len, split && (len & 1) == 0, dst);
        }
        for (int i = 0; i < n; i++) if (raw.pooled()[i]) giveBytes(raw.bytes()[i]);
        dst.flip();
        return new Encoded(raw.start() * out.size(), dst);
    }

    /**
     * One tile: decode each input, run the kernel, encode. A method of its own because it runs
     * thousands of times a second and so is compiled at once; as the body of the chunk's loop it
     * stayed interpreted for a whole merge (the chunk method runs too few times for the JIT).
     */
    private void tile(TensorKernel kernel, Raw raw, Tiles t, int s, int len, boolean splitTile, ByteBuffer dst) {
        DType out = tensor.outDType();
        int n = raw.bytes().length;
        for (int i = 0; i < n; i++) {
            PlannedTensor.Input in = tensor.inputs().get(i);
            DType dt = in.source().info().dtype();
            ByteBuffer b = raw.bytes()[i];
            b.position(s * dt.size());
            // Non-finite inputs are counted here, where the bytes are decoded anyway, not in a scan of their own.
            boolean finite = splitTile ? Convert.decodeBf16Split(b, t.in[i], len) : Convert.decodeFinite(dt, b, t.in[i], 0, len);
            if (!finite) {
                NonFinite.seen(in, raw.start() + s, len, t.in[i]);
            }
            DType cast = in.castTo();
            if (cast != null && cast != dt && InputReader.narrower(cast, dt)) {
                float[] x = t.in[i];
                for (int j = 0; j < len; j++) x[j] = Convert.roundTo(cast, x[j]);
            }
        }
        kernel.compute(new Chunk(raw.start() + s, len, t.in), t.out);
        if (splitTile) Convert.encodeBf16Split(t.out, len, dst);
        else Convert.encode(out, t.out, 0, len, dst);
    }

    private record Encoded(long offset, ByteBuffer bytes) {}

    /** Runs the kernel on a chunk and encodes the result in the output dtype; the chunk's buffers go back to the pool. */
    private Encoded computeAndEncode(TensorKernel kernel, Chunk c) {
        DType out = tensor.outDType();
        float[] res = takeFloats();
        kernel.compute(c, res);
        release(c);
        ByteBuffer buf = takeBytes(out);
        Convert.encode(out, res, 0, c.length, buf);
        give(res);
        buf.flip();
        return new Encoded(c.start * out.size(), buf);
    }

    private CompletionStage<Done> runInMemory(Materializer mat, TensorKernel kernel, List<long[]> ranges) {
        return Source.from(ranges)
                .mapAsync(PREFETCH, r -> load(r))
                .runWith(Sink.seq(), mat)
                .thenCompose(chunks -> {
                    for (int p = 0; p < traits.reductionPasses(); p++) {
                        for (Chunk c : chunks) kernel.reduce(p, c);
                        kernel.endPass(p);
                    }
                    return Source.from(chunks)
                            .map(c -> guarded(() -> checksum(computeAndEncode(kernel, c))))
                            .mapAsync(PREFETCH, e -> CompletableFuture.supplyAsync(() -> write(e), writer.executorFor(tensor.name())))
                            .runWith(Sink.ignore(), mat);
                });
    }

    private boolean canCopyBytes() {
        PlannedTensor.Input in = tensor.inputs().get(0);
        return !in.cropped() && in.castTo() == null && in.rows() == null && in.source().delta() == null
                && in.source().info().dtype() == tensor.outDType();
    }

    private CompletionStage<Done> copyBytes(Materializer mat, List<long[]> ranges) {
        PlannedTensor.Input in = tensor.inputs().get(0);
        int es = tensor.outDType().size();
        return Source.from(ranges)
                .mapAsync(PREFETCH, r -> CompletableFuture.supplyAsync(() -> new Encoded(r[0] * es, InputReader.readBytes(in, r[0] * es, (int) (r[1] * es))), io))
                .map(e -> NonFinite.seen(in.source(), e.offset() / es, e.bytes(), e))
                .map(this::checksum)
                .mapAsync(PREFETCH, e -> CompletableFuture.supplyAsync(() -> write(e), writer.executorFor(tensor.name())))
                .runWith(Sink.ignore(), mat);
    }

    private CompletionStage<Chunk> load(long[] r) {
        return CompletableFuture.supplyAsync(() -> {
            int len = (int) r[1];
            float[][] in = new float[tensor.inputs().size()][];
            for (int i = 0; i < in.length; i++) {
                in[i] = takeFloats();
                reader.read(tensor.inputs().get(i), r[0], len, in[i]);
            }
            return new Chunk(r[0], len, in);
        }, io);
    }

    private float[] takeFloats() {
        return pool.floats(chunkLen);
    }

    private void give(float[] f) {
        pool.give(f);
    }

    private void release(Chunk c) {
        for (float[] f : c.in) give(f);
    }

    private ByteBuffer takeBytes(DType out) {
        return pool.bytes(chunkLen * out.size());
    }

    private void giveBytes(ByteBuffer b) {
        pool.give(b);
    }

    private Done write(Encoded e) {
        try {
            writer.write(tensor.name(), e.offset(), e.bytes());
            giveBytes(e.bytes());
        } catch (IOException ex) {
            throw new MergeException(MergeException.Kind.USER, "writing " + tensor.name() + " to " + writer.dir() + " failed: " + ex.getMessage()
                    + " (is the disk full?)", ex);
        }
        return Done.getInstance();
    }
}
