package org.mergeengine.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;
import org.mergeengine.engine.MergeOptions;
import org.mergeengine.engine.OutputFolder;
import org.mergeengine.engine.Progress;
import org.mergeengine.formats.Json;
import org.mergeengine.plan.MergePlan;
import org.mergeengine.plan.PlannedTensor;

/** What the CLI prints about a plan and a finished merge: lines for people, or one JSON object for scripts (--json). */
final class Report {
    private final PrintStream out;
    private final PrintStream err;
    private final int verbosity;

    Report(PrintStream out, PrintStream err, int verbosity) {
        this.out = out;
        this.err = err;
        this.verbosity = verbosity;
    }

    /**
     * The memory the plan's tasks may hold at once: the {@code workers} largest tasks in flight
     * together, each a chunk (or the whole tensor, when smaller) of every input in float32 plus
     * the accumulator and the output; never more than the budget, which caps what is admitted.
     */
    static long peakEstimate(MergePlan plan, MergeOptions opts) {
        List<Long> perTask = new ArrayList<>();
        for (PlannedTensor t : plan.tensors()) {
            perTask.add(Math.min(t.numel(), opts.chunkElements()) * 4L * (t.inputs().size() + 2));
        }
        perTask.sort(Comparator.reverseOrder());
        long sum = 0;
        for (int i = 0; i < Math.min(opts.workers(), perTask.size()); i++) sum += perTask.get(i);
        return Math.min(sum, opts.maxMemoryBytes());
    }

    void plan(MergePlan plan, MergeOptions opts, Path outDir) {
        out.println("merge method:    " + plan.method().name());
        out.println("models:          " + String.join(", ", plan.models().keySet()));
        out.println("output tensors:  " + plan.tensors().size() + " in " + plan.layout().shards().size() + " shard(s), "
                + plan.outputLayers() + " layers");
        out.println("input bytes:     " + Sizes.human(plan.inputBytes()));
        out.println("output bytes:    " + Sizes.human(plan.outputBytes()));
        out.println("workers:         " + opts.workers());
        out.println("memory budget:   " + Sizes.human(opts.maxMemoryBytes()) + " (the most tensor data admitted at once; --max-memory)");
        out.println("peak memory est: " + Sizes.human(peakEstimate(plan, opts)) + " of tensor data (the " + opts.workers()
                + " largest tasks in flight at once)");
        out.println("output folder:   " + outDir);
        for (Path stale : OutputFolder.staleTemporaries(outDir, OutputFolder.tempPath(outDir, OutputFolder.planHash(plan)))) {
            out.println("stale temporary: " + stale + " (left by an interrupted run of another plan; a run into this folder removes it)");
        }
        if (verbosity > 0) {
            for (PlannedTensor t : plan.tensors()) {
                StringBuilder sb = new StringBuilder("  [").append(plan.modules().get(t.name())).append("] ").append(t.name()).append(' ').append(Arrays.toString(t.shape()))
                        .append(' ').append(t.outDType().safetensorsName()).append(" <-");
                for (PlannedTensor.Input i : t.inputs()) sb.append(' ').append(i.model()).append(':').append(i.source().info().name());
                out.println(sb);
            }
        }
    }

    void planJson(MergePlan plan, MergeOptions opts, Path outDir, List<String> warnings) {
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("dry_run", true);
        o.put("merge_method", plan.method().name());
        ArrayNode models = o.putArray("models");
        plan.models().keySet().forEach(models::add);
        o.put("output", outDir.toString());
        o.put("tensors", plan.tensors().size());
        o.put("shards", plan.layout().shards().size());
        o.put("layers", plan.outputLayers());
        o.put("input_bytes", plan.inputBytes());
        o.put("output_bytes", plan.outputBytes());
        o.put("workers", opts.workers());
        o.put("memory_budget_bytes", opts.maxMemoryBytes());
        o.put("peak_memory_estimate_bytes", peakEstimate(plan, opts));
        putWarnings(o, warnings);
        print(o);
    }

    /** The closing line; {@code secs} is the whole run (planning included), the progress lines' time the merge alone. */
    void merged(Progress p, Path outDir, double secs, int lanes) {
        err.println(String.format(Locale.ROOT, "merged %d tensors (%s read, %s written) on %d lane(s) into %s: %.2fs merging, %.2fs in all",
                p.tensorsTotal(), Sizes.human(p.inputBytesTotal()), Sizes.human(outputBytes(outDir)), lanes, outDir, p.elapsedNanos() / 1e9, secs));
    }

    void mergedJson(Progress p, Path outDir, double secs, List<String> warnings) {
        ObjectNode o = Json.MAPPER.createObjectNode();
        o.put("output", outDir.toAbsolutePath().toString());
        o.put("tensors", p.tensorsTotal());
        o.put("input_bytes", p.inputBytesTotal());
        o.put("output_bytes", outputBytes(outDir));
        o.put("seconds", Math.round(secs * 1000) / 1000.0);
        o.put("merge_seconds", Math.round(p.elapsedNanos() / 1e6) / 1000.0);
        o.put("peak_memory_bytes", peakMemoryBytes());
        o.put("resumed_parts", p.resumedParts());
        putWarnings(o, warnings);
        print(o);
    }

    private static void putWarnings(ObjectNode o, List<String> warnings) {
        ArrayNode w = o.putArray("warnings");
        warnings.forEach(w::add);
    }

    private void print(ObjectNode o) {
        try {
            out.println(Json.MAPPER.writer().without(SerializationFeature.INDENT_OUTPUT).writeValueAsString(o));
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Bytes of the weight files in the output folder. */
    static long outputBytes(Path dir) {
        try (Stream<Path> s = Files.list(dir)) {
            long sum = 0;
            for (Path f : s.filter(f -> f.getFileName().toString().endsWith(".safetensors")).toList()) sum += Files.size(f);
            return sum;
        } catch (IOException e) {
            return 0;
        }
    }

    /**
     * The process's peak resident memory (Linux's VmHWM), which is what a machine's limit counts;
     * elsewhere the peak of the JVM's heap pools.
     */
    static long peakMemoryBytes() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        } catch (IOException | RuntimeException e) {
            // not Linux: fall back to the heap
        }
        long peak = 0;
        for (MemoryPoolMXBean b : ManagementFactory.getMemoryPoolMXBeans()) {
            if (b.getType() == MemoryType.HEAP && b.getPeakUsage() != null) peak += b.getPeakUsage().getUsed();
        }
        return peak;
    }
}
