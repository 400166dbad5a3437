package org.mergeengine.engine;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * How the engine runs a plan.
 * @param workers worker lanes pulling tensors
 * @param maxMemoryBytes budget for tensor data in flight
 * @param chunkElements elements per streamed chunk of a tensor
 * @param copyTokenizer copy the donor's tokenizer files into the output
 * @param writeModelCard write README.md and mergekit_config.yml
 * @param progress called after each tensor (on an actor thread; keep it quick), or null
 * @param stageHash recorded in the completion marker (multi-stage merges), or null
 * @param devices the worker lanes' devices, or null for {@code workers} CPU lanes
 * @param failOnNonFinite NaN or infinite input values are an error (else a warning)
 */
public record MergeOptions(int workers, long maxMemoryBytes, int chunkElements, boolean copyTokenizer,
                           boolean writeModelCard, Consumer<Progress> progress, String stageHash, List<Device> devices,
                           boolean failOnNonFinite) {
    public MergeOptions(int workers, long maxMemoryBytes, int chunkElements, boolean copyTokenizer, boolean writeModelCard,
                        Consumer<Progress> progress, String stageHash, List<Device> devices) {
        this(workers, maxMemoryBytes, chunkElements, copyTokenizer, writeModelCard, progress, stageHash, devices, false);
    }

    public MergeOptions(int workers, long maxMemoryBytes, int chunkElements, boolean copyTokenizer, boolean writeModelCard,
                        Consumer<Progress> progress, String stageHash) {
        this(workers, maxMemoryBytes, chunkElements, copyTokenizer, writeModelCard, progress, stageHash, null);
    }

    /** The lanes: the given devices, else {@code workers} CPU lanes. */
    public List<Device> lanes() {
        if (devices != null && !devices.isEmpty()) return devices;
        List<Device> l = new ArrayList<>();
        for (int i = 0; i < Math.max(1, workers); i++) l.add(Device.cpu(i));
        return l;
    }

    public MergeOptions withDevices(List<Device> d) {
        return new MergeOptions(d.size(), maxMemoryBytes, chunkElements, copyTokenizer, writeModelCard, progress, stageHash, d, failOnNonFinite);
    }

    public MergeOptions(int workers, long maxMemoryBytes, int chunkElements, boolean copyTokenizer, boolean writeModelCard, Consumer<Progress> progress) {
        this(workers, maxMemoryBytes, chunkElements, copyTokenizer, writeModelCard, progress, null, null);
    }

    /** A multi-merge stage's identity, recorded in the completion marker. */
    public MergeOptions withStageHash(String h) {
        return new MergeOptions(workers, maxMemoryBytes, chunkElements, copyTokenizer, writeModelCard, progress, h, devices, failOnNonFinite);
    }

    public static final int DEFAULT_CHUNK = 1 << 20;

    public static long defaultBudget() {
        return Math.max(64L << 20, (long) (Runtime.getRuntime().maxMemory() * 0.5));
    }

    public static MergeOptions defaults() {
        return new MergeOptions(Runtime.getRuntime().availableProcessors(), defaultBudget(), DEFAULT_CHUNK, true, true, null);
    }

    public MergeOptions withWorkers(int n) {
        return new MergeOptions(n, maxMemoryBytes, chunkElements, copyTokenizer, writeModelCard, progress, stageHash, devices, failOnNonFinite);
    }

    public MergeOptions withChunkElements(int n) {
        return new MergeOptions(workers, maxMemoryBytes, n, copyTokenizer, writeModelCard, progress, stageHash, devices, failOnNonFinite);
    }

    public MergeOptions withProgress(Consumer<Progress> p) {
        return new MergeOptions(workers, maxMemoryBytes, chunkElements, copyTokenizer, writeModelCard, p, stageHash, devices, failOnNonFinite);
    }

    public MergeOptions withFailOnNonFinite(boolean fail) {
        return new MergeOptions(workers, maxMemoryBytes, chunkElements, copyTokenizer, writeModelCard, progress, stageHash, devices, fail);
    }
}
