import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.zip.CRC32;
import org.mergeengine.tensor.Convert;

/**
 * The least a JVM does for the bench's linear merge: the engine's bf16 conversions and the linear
 * kernel's two loops, run by plain threads over 2 MB chunks (read both inputs, merge in tiles of
 * 8,192, CRC32, write, flush every 16 MB, sync at the end) with no actors, streams, plan or output
 * folder. It tells how much of the engine's time over native code is the engine's own and how
 * much is Java's: the data sections are merged as one flat bf16 array, so the output is not a model.
 *
 * <pre>
 * java -cp target/classes benchmarks/JavaFloor.java A/model.safetensors B/model.safetensors OUT_FILE [THREADS] [WARM_UP_TILES]
 * </pre>
 *
 * WARM_UP_TILES tiles of made-up values run through the same loops before the clock starts, so
 * that the JIT has compiled them (the engine's merges start cold).
 */
public final class JavaFloor {
    private static final int CHUNK = 2 << 20, TILE = 8192;
    private static final long FLUSH_EVERY = 16L << 20;

    public static void main(String[] args) throws Exception {
        Path a = Path.of(args[0]), b = Path.of(args[1]), out = Path.of(args[2]);
        int threads = args.length > 3 ? Integer.parseInt(args[3]) : 2;
        int warmUp = args.length > 4 ? Integer.parseInt(args[4]) : 0;
        long w0 = System.nanoTime();
        warmUp(warmUp);
        long t0 = System.nanoTime();
        try (FileChannel fa = FileChannel.open(a); FileChannel fb = FileChannel.open(b);
             FileChannel fo = FileChannel.open(out, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            long sa = dataStart(fa), sb = dataStart(fb);
            long bytes = Math.min(fa.size() - sa, fb.size() - sb) / 4 * 4;
            long chunks = (bytes + CHUNK - 1) / CHUNK;
            AtomicLong next = new AtomicLong(), unflushed = new AtomicLong();
            AtomicBoolean flushing = new AtomicBoolean();
            Thread[] ts = new Thread[threads];
            for (int t = 0; t < threads; t++) {
                ts[t] = new Thread(() -> {
                    ByteBuffer ra = direct(), rb = direct(), o = direct();
                    float[] x = new float[TILE], y = new float[TILE], r = new float[TILE];
                    CRC32 crc = new CRC32();
                    try {
                        for (long c; (c = next.getAndIncrement()) < chunks; ) {
                            long off = c * CHUNK;
                            int len = (int) Math.min(CHUNK, bytes - off);
                            read(fa, ra, sa + off, len);
                            read(fb, rb, sb + off, len);
                            o.clear();
                            for (int s = 0; s < len / 2; s += TILE) {
                                int n = Math.min(TILE, len / 2 - s);
                                merge(ra.position(2 * s), rb.position(2 * s), x, y, r, n, o);
                            }
                            o.flip();
                            crc.update(o.duplicate());
                            while (o.hasRemaining()) fo.write(o, off + o.position());
                            if (unflushed.addAndGet(len) >= FLUSH_EVERY && flushing.compareAndSet(false, true)) {
                                unflushed.set(0);
                                new Thread(() -> {
                                    try {
                                        fo.force(false);
                                    } catch (Exception ignored) {
                                        // the final force reports
                                    } finally {
                                        flushing.set(false);
                                    }
                                }).start();
                            }
                        }
                    } catch (Exception e) {
                        throw new RuntimeException(e);
                    }
                });
                ts[t].start();
            }
            for (Thread t : ts) t.join();
            long t1 = System.nanoTime();
            fo.force(true);
            long t2 = System.nanoTime();
            System.out.printf(Locale.ROOT, "warm-up %.2f s; merge %.2f s, final sync %.2f s: %.2f s for %.2f GB in (%d threads)%n",
                    (t0 - w0) / 1e9, (t1 - t0) / 1e9, (t2 - t1) / 1e9, (t2 - t0) / 1e9, 2 * bytes / 1e9, threads);
        }
        Files.deleteIfExists(out);
    }

    /** The engine's split bf16 path for two inputs of weight 0.5 each (Linear's loops, Convert's conversions). */
    private static void merge(ByteBuffer ra, ByteBuffer rb, float[] x, float[] y, float[] r, int n, ByteBuffer o) {
        Convert.decodeBf16Split(ra, x, n);
        Convert.decodeBf16Split(rb, y, n);
        for (int j = 0; j < n; j++) r[j] = 0.5f * x[j];
        for (int j = 0; j < n; j++) r[j] += 0.5f * y[j];
        Convert.encodeBf16Split(r, n, o);
    }

    private static void warmUp(int tiles) {
        ByteBuffer a = direct(), b = direct(), o = direct();
        float[] x = new float[TILE], y = new float[TILE], r = new float[TILE];
        for (int i = 0; i < tiles; i++) merge(a.position(0), b.position(0), x, y, r, TILE, o.clear());
    }

    private static ByteBuffer direct() {
        return ByteBuffer.allocateDirect(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static void read(FileChannel ch, ByteBuffer into, long pos, int len) throws Exception {
        into.clear().limit(len);
        while (into.hasRemaining()) {
            if (ch.read(into, pos + into.position()) < 0) throw new IllegalStateException("short file");
        }
    }

    private static long dataStart(FileChannel ch) throws Exception {
        ByteBuffer n = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        while (n.hasRemaining()) ch.read(n, n.position());
        return 8 + n.getLong(0);
    }
}
