package org.mergeengine.engine;

import java.util.ArrayList;
import java.util.List;
import org.mergeengine.methods.KernelTraits;
import org.mergeengine.plan.PlannedTensor;

/**
 * How the engine cuts a tensor into tasks and chunks, and how much memory a task holds: read from
 * the method's {@link KernelTraits} for the tensor, never from a built kernel.
 *
 * @param chunkElements elements per chunk that a streamed kernel is handed at most
 * @param retainBytes bytes a task may keep in memory to run its reduction passes without re-reading its inputs
 */
public record Sizing(int chunkElements, long retainBytes) {
    /** Chunks that a task's loads run ahead of its kernel. */
    static final int PREFETCH = 2;

    /** The traits of the kernel the tensor's method would build for it. */
    public static KernelTraits traits(PlannedTensor t) {
        return t.method().traits(t.context());
    }

    /** Elements per chunk: the whole tensor for whole-tensor kernels, else the chunk size rounded down to the kernel's alignment. */
    long chunkLength(PlannedTensor t, KernelTraits k) {
        long n = t.numel();
        if (k.wholeTensor()) return n;
        long a = k.alignment();
        long c = Math.max(a, chunkElements / a * a);
        return Math.min(c, n);
    }

    /**
     * Whether the decoded tensor is kept in memory across the kernel's passes: reading and decoding
     * it once instead of once per pass (TIES and breadcrumbs make three passes).
     */
    boolean retains(PlannedTensor t, KernelTraits k) {
        return k.reductionPasses() > 0 && !k.wholeTensor() && t.numel() * 4L * t.inputs().size() <= retainBytes;
    }

    /** Bytes of heap a task of this tensor holds at most while it runs (for the memory budget). */
    public long memoryEstimate(PlannedTensor t) {
        KernelTraits k = traits(t);
        long chunk = chunkLength(t, k);
        if (retains(t, k)) return t.numel() * 4L * t.inputs().size() + chunk * 4L * (t.inputs().size() + 2) * 2;
        int lanes = 2 * t.inputs().size() + 2; // inputs, method scratch of similar size, output, encoded output
        return chunk * 4L * lanes * (k.wholeTensor() ? 1 : PREFETCH + 1);
    }

    /**
     * Chunks a part holds at least. A task costs about 2.5 ms of CPU before its first chunk (its
     * stream, its messages, its journal line); parts of two chunks made a 1.5 GB linear merge
     * three hundred tasks instead of 135, and 2 workers took 4.45 s against 4.20 s (0.5 s more CPU).
     */
    static final int MIN_PART_CHUNKS = 8;

    /**
     * Parts a tensor is split into so that several lanes share it: only kernels without statistics
     * over the whole tensor, only with more than one lane, and only tensors of two parts of
     * {@value #MIN_PART_CHUNKS} chunks or more (about two parts per lane at most). Part boundaries
     * fall on chunk boundaries, so the bytes are those of an unsplit run.
     */
    public List<long[]> parts(PlannedTensor t, int lanes) {
        KernelTraits k = traits(t);
        long n = t.numel();
        long chunk = chunkLength(t, k);
        if (lanes < 2 || !k.splittable() || n == 0) return List.of(new long[] {0, n});
        long chunks = (n + chunk - 1) / chunk;
        long count = Math.min(2L * lanes, chunks / MIN_PART_CHUNKS);
        if (count < 2) return List.of(new long[] {0, n});
        long per = (chunks + count - 1) / count * chunk;
        List<long[]> out = new ArrayList<>();
        for (long s = 0; s < n; s += per) out.add(new long[] {s, Math.min(n, s + per)});
        return out;
    }
}
