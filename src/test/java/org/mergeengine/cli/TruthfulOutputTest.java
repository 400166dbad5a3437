package org.mergeengine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.TinyModels;
import org.mergeengine.engine.Progress;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.ModelFolder;

/** What the CLI says about a merge is true: progress and times, --json, the dry run's memory figures, bench's model size. */
class TruthfulOutputTest {
    @TempDir
    static Path dir;
    static Path cfg;

    @BeforeAll
    static void models() throws Exception {
        TinyModels.write(dir, DType.BF16, 1);
        cfg = Files.writeString(dir.resolve("linear.yaml"), "merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 0.5}\n"
                + "  - model: ft1\n    parameters: {weight: 0.5}\n");
    }

    static Progress progress(int done, long bytesDone, double secs) {
        return new Progress(done, 40, bytesDone, 1000, (long) (secs * 1e9), Map.of(), 0);
    }

    @Test
    void noEtaUntilAFewPercentAreDone() {
        assertEquals(-1, progress(1, 10, 2.0).etaSeconds(), "1% done says nothing about the rest");
        assertEquals(-1, progress(2, 49, 2.0).etaSeconds());
        assertEquals(18.0, progress(5, 100, 2.0).etaSeconds(), 1e-9, "10% in 2 s: 18 s left");
        assertEquals(-1, progress(40, 1000, 2.0).etaSeconds(), "done: no ETA");
        assertEquals(-1, progress(4, 100, 2.0).etaSeconds(progress(4, 100, 2.0)), "no rate from a single snapshot");
        assertEquals(2.5, progress(10, 250, 2.0).etaSeconds(progress(2, 100, 1.5)), 1e-9,
                "150 bytes in the 0.5 s since the first snapshot: 300 bytes/s, so the 750 left take 2.5 s (not the 6 s of the average since the start)");

        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        ProgressPrinter p = new ProgressPrinter(new PrintStream(buf, true, StandardCharsets.UTF_8), false);
        p.accept(progress(1, 10, 2.0));
        String early = buf.toString(StandardCharsets.UTF_8);
        assertFalse(early.contains("ETA"), early);
        assertTrue(early.contains("2.0s so far"), early);
        p.accept(progress(40, 1000, 3.25));
        assertTrue(buf.toString(StandardCharsets.UTF_8).contains("merged in 3.25s"), buf.toString(StandardCharsets.UTF_8));
    }

    @Test
    void theLastProgressLineAndTheClosingLineAgreeOnTheMergeTime() {
        TestSupport.Result r = TestSupport.cli(cfg.toString(), dir.resolve("times").toString());
        assertEquals(0, r.exitCode(), r.stderr());
        Matcher last = Pattern.compile("merged in ([0-9.]+)s").matcher(r.stderr());
        Matcher closing = Pattern.compile("merged \\d+ tensors .*: ([0-9.]+)s merging, ([0-9.]+)s in all").matcher(r.stderr());
        assertTrue(last.find() && closing.find(), r.stderr());
        assertEquals(last.group(1), closing.group(1), "one merge time, labelled as such: " + r.stderr());
        assertTrue(Double.parseDouble(closing.group(2)) >= Double.parseDouble(closing.group(1)), r.stderr());
    }

    @Test
    void jsonIsOneObjectOnStdoutThatMatchesTheOutput() throws Exception {
        Path out = dir.resolve("json");
        TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--json", "--quiet");
        assertEquals(0, r.exitCode(), r.stderr());
        assertEquals(1, r.stdout().strip().lines().count(), r.stdout());
        JsonNode j = Json.MAPPER.readTree(r.stdout());
        assertEquals(out.toAbsolutePath().toString(), j.get("output").asText());
        long bytes = 0, inBytes = 0;
        try (Stream<Path> s = Files.list(out)) {
            for (Path f : s.filter(f -> f.toString().endsWith(".safetensors")).toList()) bytes += Files.size(f);
        }
        try (ModelFolder m = ModelFolder.open(out); ModelFolder a = ModelFolder.open(dir.resolve("base"))) {
            assertEquals(m.tensors().size(), j.get("tensors").asInt());
            for (String name : a.tensors().keySet()) inBytes += 2 * a.tensor(name).info().byteSize();
        }
        assertEquals(bytes, j.get("output_bytes").asLong());
        assertEquals(inBytes, j.get("input_bytes").asLong(), "both models' tensors are read once");
        assertTrue(j.get("seconds").asDouble() >= j.get("merge_seconds").asDouble() && j.get("merge_seconds").asDouble() > 0, j.toString());
        assertTrue(j.get("peak_memory_bytes").asLong() > 0, j.toString());
        assertTrue(j.get("warnings").isArray(), j.toString());
    }

    @Test
    void aDryRunsMemoryFiguresFitASmallMerge() throws Exception {
        Path out = dir.resolve("dry");
        TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--dry-run", "--json", "--max-memory", "2G", "-j", "2");
        assertEquals(0, r.exitCode(), r.stderr());
        JsonNode j = Json.MAPPER.readTree(r.stdout());
        assertTrue(j.get("dry_run").asBoolean());
        assertEquals(2_000_000_000L, j.get("memory_budget_bytes").asLong());
        long in = j.get("input_bytes").asLong(), peak = j.get("peak_memory_estimate_bytes").asLong();
        assertTrue(peak > 0 && peak <= 4 * in, "two bf16 inputs held as floats with an accumulator and an output: at most 4x the input, here "
                + peak + " for " + in);
        assertFalse(Files.exists(out));
    }

    @Test
    void benchGeneratesTheSizeItRecords() {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream err = new PrintStream(buf, true, StandardCharsets.UTF_8);
        long small = BenchCommand.modelBytes(20_000_000L, err);
        assertTrue(small > 300_000_000L, "one layer of the smallest shape is far above 20 MB: " + small);
        assertTrue(buf.toString(StandardCharsets.UTF_8).contains("--size 20.00 MB") && buf.toString(StandardCharsets.UTF_8).contains("using that"),
                buf.toString(StandardCharsets.UTF_8));
        assertEquals(small, BenchCommand.modelBytes(small, err), "the smallest size is generated as asked");
        buf.reset();
        assertEquals(1_500_000_000L, BenchCommand.modelBytes(1_500_000_000L, err));
        assertEquals("", buf.toString(StandardCharsets.UTF_8));
    }
}
