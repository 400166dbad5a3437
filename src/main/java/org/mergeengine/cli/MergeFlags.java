package org.mergeengine.cli;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.mergeengine.MergeException;
import org.mergeengine.djl.DjlDevice;
import org.mergeengine.engine.Device;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.formats.SafetensorsFile;
import org.mergeengine.hub.HubSettings;
import org.mergeengine.plan.PlanOptions;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Option;

/**
 * The options of a merge, under mergekit-yaml's names where mergekit has one, shared by a single
 * merge, {@code multi} and {@code extract-lora}. mergekit's options that this engine needs no
 * counterpart for are accepted with a one-line note saying why ({@link #notes}), so that a
 * mergekit command line runs unchanged.
 */
final class MergeFlags {
    @Option(names = "--out-shard-size", paramLabel = "SIZE", description = "bytes per output shard, e.g. 5B, 500M (default 5B)")
    String outShardSize = "5B";

    @Option(names = "--copy-tokenizer", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "copy the tokenizer files of the base (else first) model (default on)")
    boolean copyTokenizer = true;

    @Option(names = "--write-model-card", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "write README.md and mergekit_config.yml (default on)")
    boolean writeModelCard = true;

    @Option(names = "--allow-crimes", negatable = true, description = "allow merging models of different architectures")
    boolean allowCrimes;

    @Option(names = "--fail-on-nonfinite", description = "stop with an error when an input tensor holds NaN or infinite values (default: a warning naming the model and tensor)")
    boolean failOnNonFinite;

    @Option(names = "--max-memory", paramLabel = "SIZE", description = "budget for tensor data in flight (default: half the JVM heap)")
    String maxMemory;

    @Option(names = {"--workers", "-j", "--num-threads"}, paramLabel = "N", description = "worker lanes computing tensors (default: number of CPUs)")
    Integer workers;

    @Option(names = {"--multigpu", "--multi-gpu"}, negatable = true, description = "one worker per device (CPU lanes on machines without a GPU backend)")
    boolean multigpu;

    @Option(names = "--backend", paramLabel = "NAME", description = "java (default) or djl: compute linear, task_arithmetic and slerp with PyTorch through DJL")
    String backend = "java";

    @Option(names = "--cuda", negatable = true, description = "run the DJL backend on CUDA devices (one GPU; all of them with --multi-gpu); implies --backend djl")
    boolean cuda;

    @Option(names = "--device", paramLabel = "NAME", description = "cpu (default), cuda (as --cuda), or auto (CUDA when DJL finds a GPU, else the CPU)")
    String device;

    @Option(names = "--gpu-rich", description = "--cuda --multi-gpu (mergekit's shorthand)")
    boolean gpuRich;

    @Option(names = "--random-seed", paramLabel = "N", description = "seed of the random methods (default 42)")
    long seed = PlanOptions.DEFAULT_SEED;

    @Option(names = "--chunk-elements", paramLabel = "N", hidden = true, description = "elements per streamed chunk")
    int chunkElements = MergeOptions.DEFAULT_CHUNK;

    @Option(names = {"--cache-dir", "--transformers-cache"}, paramLabel = "DIR", description = "hub cache folder (default: HF_HUB_CACHE, else HF_HOME/hub)")
    Path cacheDir;

    @Option(names = "--offline", description = "use the hub cache only, no network (also HF_HUB_OFFLINE=1)")
    boolean offline;

    @Option(names = "--mmap", description = "read inputs through memory-mapped windows instead of positional reads")
    boolean mmap;

    @Option(names = {"-v", "--verbose"}, description = "more output (repeat for more)")
    boolean[] verbose = new boolean[0];

    @Option(names = "--quiet", negatable = true, description = "no progress output, no notes")
    boolean quiet;

    @ArgGroup(validate = false, heading = "%nmergekit options that need nothing here (accepted, with a note saying why):%n")
    Compat compat = new Compat();

    /** mergekit's options that need no counterpart here: accepted, with a note when they are on. */
    static final class Compat {
        @Option(names = "--lazy-unpickle", negatable = true, description = ".bin files are always read tensor by tensor")
        boolean lazyUnpickle;

        @Option(names = "--lora-merge-cache", paramLabel = "DIR", description = "adapters are applied while the base streams, with no cache")
        Path loraMergeCache;

        @Option(names = "--lora-merge-dtype", paramLabel = "DTYPE", description = "adapters are applied in float32 and rounded to the base's dtype")
        String loraMergeDtype;

        @Option(names = "--trust-remote-code", negatable = true, description = "no model code is ever run")
        boolean trustRemoteCode;

        @Option(names = "--low-cpu-memory", negatable = true, description = "memory is always bounded by --max-memory")
        boolean lowCpuMemory;

        @Option(names = "--read-to-gpu", negatable = true, description = "each task moves its own chunks to its device")
        boolean readToGpu;

        @Option(names = "--clone-tensors", negatable = true, description = "every output tensor is written from its own buffer")
        boolean cloneTensors;

        @Option(names = "--async-write", negatable = true, description = "tensors are written as they finish, beside the merging")
        boolean asyncWrite;

        @Option(names = "--write-threads", paramLabel = "N", description = "the worker lanes write what they merge")
        Integer writeThreads;

        @Option(names = "--multi-stream", negatable = true, description = "every device lane already has its own queue")
        boolean multiStream;

        @Option(names = "--safe-serialization", negatable = true, defaultValue = "true", fallbackValue = "true",
                description = "output is always safetensors; --no-safe-serialization is refused")
        boolean safeSerialization = true;
    }

    /**
     * One line per mergekit option given that needs nothing here, saying why; refuses what cannot
     * be honoured.
     */
    List<String> notes() {
        Compat c = compat != null ? compat : new Compat();
        if (!c.safeSerialization) {
            throw MergeException.user("--no-safe-serialization: output is always safetensors (pytorch_model.bin is not written); drop the option");
        }
        List<String> n = new ArrayList<>();
        if (c.lazyUnpickle) n.add("--lazy-unpickle is not needed: PyTorch .bin files are always read tensor by tensor, through a restricted unpickler");
        if (c.loraMergeCache != null) n.add("--lora-merge-cache is not needed: adapters are applied while the base model streams, so nothing is cached");
        if (c.loraMergeDtype != null) n.add("--lora-merge-dtype is not needed: adapters are applied in float32 and rounded to the base's dtype");
        if (c.trustRemoteCode) n.add("--trust-remote-code is not needed: no model code is run, config and weights are read as files");
        if (c.lowCpuMemory) n.add("--low-cpu-memory is not needed: tensors stream within --max-memory whatever the device");
        if (c.readToGpu) n.add("--read-to-gpu is not needed: each task moves its own chunks to its device");
        if (c.cloneTensors) n.add("--clone-tensors is not needed: every output tensor is written from its own buffer");
        if (c.asyncWrite) n.add("--async-write is not needed: tensors are written as they finish, while others are merged");
        if (c.writeThreads != null) n.add("--write-threads is not needed: the worker lanes (--workers) write what they merge");
        if (c.multiStream) n.add("--multi-stream is not needed: every device lane already runs its own queue of tasks");
        if (gpuRich) n.add("--gpu-rich runs as --cuda --multi-gpu (its --low-cpu-memory and --read-to-gpu need nothing here)");
        return n;
    }

    /** Prints {@link #notes} on stderr unless --quiet. */
    void printNotes(PrintStream err) {
        List<String> n = notes();
        if (!quiet) for (String s : n) err.println("note: " + s);
    }

    int verbosity() {
        return verbose.length;
    }

    void setLogLevel() {
        String level = quiet ? "ERROR" : verbose.length == 0 ? "WARN" : verbose.length == 1 ? "INFO" : "DEBUG";
        ((Logger) LoggerFactory.getLogger(Logger.ROOT_LOGGER_NAME)).setLevel(Level.toLevel(level));
    }

    long shardBytes() {
        return size(outShardSize, "--out-shard-size");
    }

    long budget() {
        return maxMemory == null ? MergeOptions.defaultBudget() : size(maxMemory, "--max-memory");
    }

    int lanes() {
        if (workers != null && workers < 1) throw MergeException.user("--workers must be at least 1");
        return workers != null ? workers : Runtime.getRuntime().availableProcessors();
    }

    HubSettings hub() {
        if (mmap) System.setProperty(SafetensorsFile.MMAP_PROPERTY, "true");
        return HubSettings.fromEnvironment(System.getenv(), cacheDir, offline);
    }

    PlanOptions planOptions() {
        return new PlanOptions(seed, shardBytes(), allowCrimes);
    }

    /** The engine's options, without devices or a progress listener. */
    MergeOptions mergeOptions() {
        if (chunkElements < 1024) throw MergeException.user("--chunk-elements must be at least 1024");
        return new MergeOptions(lanes(), budget(), chunkElements, copyTokenizer, writeModelCard, null).withFailOnNonFinite(failOnNonFinite);
    }

    /** The lanes' devices for --backend/--cuda/--device/--multi-gpu, or null for plain CPU lanes. */
    List<Device> devices(PrintStream err) {
        int lanes = lanes();
        String dev = device == null ? "cpu" : device.toLowerCase(Locale.ROOT);
        boolean gpu = cuda || gpuRich || dev.startsWith("cuda");
        boolean multi = multigpu || gpuRich;
        if (!gpu && !dev.equals("cpu") && !dev.equals("auto")) {
            throw MergeException.user("--device " + device + ": use cpu, cuda or auto (this engine runs on the CPU or, through DJL, on CUDA)");
        }
        boolean djl = gpu || backend.equalsIgnoreCase("djl");
        if (!djl && !backend.equalsIgnoreCase("java")) throw MergeException.user("--backend must be java or djl, not '" + backend + "'");
        if (gpu) return DjlDevice.cuda(multi ? 0 : 1);
        if (dev.equals("auto")) {
            try {
                return DjlDevice.cuda(multi ? 0 : 1);
            } catch (MergeException e) {
                if (!quiet) err.println("note: --device auto: no CUDA device found through DJL, merging on the CPU");
            }
        }
        if (multi && workers == null && !quiet) {
            err.println("note: --multi-gpu without --cuda runs one worker per CPU lane (" + lanes + ")");
        }
        return djl ? DjlDevice.cpu(lanes) : null;
    }

    static long size(String text, String flag) {
        try {
            return Sizes.parse(text);
        } catch (IllegalArgumentException e) {
            throw MergeException.user(flag + ": " + e.getMessage());
        }
    }
}
