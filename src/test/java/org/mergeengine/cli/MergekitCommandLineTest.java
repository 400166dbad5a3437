package org.mergeengine.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.MergeException;
import org.mergeengine.TestSupport;
import org.mergeengine.TinyModels;
import org.mergeengine.formats.DType;
import picocli.CommandLine;

/** mergekit-yaml's, mergekit-multi's and mergekit-extract-lora's command lines run unchanged. */
class MergekitCommandLineTest {
    @TempDir
    static Path dir;
    static Path cfg;

    /** mergekit's options that need nothing here, each with the words its note must contain. */
    static final String[][] NOTED = {
        {"--lazy-unpickle", "--lazy-unpickle is not needed"},
        {"--lora-merge-cache=" + "lmc", "--lora-merge-cache is not needed"},
        {"--lora-merge-dtype=bfloat16", "--lora-merge-dtype is not needed"},
        {"--trust-remote-code", "--trust-remote-code is not needed"},
        {"--low-cpu-memory", "--low-cpu-memory is not needed"},
        {"--read-to-gpu", "--read-to-gpu is not needed"},
        {"--clone-tensors", "--clone-tensors is not needed"},
        {"--async-write", "--async-write is not needed"},
        {"--write-threads=2", "--write-threads is not needed"},
        {"--multi-stream", "--multi-stream is not needed"},
    };

    @BeforeAll
    static void models() throws Exception {
        TinyModels.write(dir, DType.BF16, 1);
        cfg = Files.writeString(dir.resolve("ties.yaml"), "merge_method: ties\nbase_model: base\nmodels:\n"
                + "  - model: ft1\n    parameters: {weight: 1.0, density: 0.5}\n");
    }

    static MergeFlags parse(String... args) {
        Main main = new Main(System.out, System.err);
        Main.commandLine(main, System.out, System.err).parseArgs(args);
        return main.flags;
    }

    static Stream<Path> weights(Path out) throws Exception {
        return Files.list(out).filter(p -> p.toString().endsWith(".safetensors")).sorted();
    }

    @Test
    void mappedOptionsSetTheirEquivalents() {
        assertEquals(Path.of("hfc"), parse("c.yaml", "--transformers-cache", "hfc").hub().cacheDir(), "--transformers-cache is the hub cache");
        assertEquals(3, parse("c.yaml", "--num-threads", "3").lanes(), "--num-threads sets the compute lanes");
        assertEquals(2, parse("c.yaml", "-j", "2").lanes());
        assertEquals(7, parse("c.yaml", "--random-seed", "7").planOptions().seed());
        assertTrue(parse("c.yaml", "--allow-crimes").planOptions().allowCrimes());
        assertFalse(parse("c.yaml", "--allow-crimes", "--no-allow-crimes").planOptions().allowCrimes(), "the last of a repeated option wins");
        assertFalse(parse("c.yaml", "--cuda", "--no-cuda").cuda);
        assertEquals(2, parse("c.yaml", "-v", "--verbose").verbosity());
        assertTrue(parse("c.yaml", "--quiet").quiet);
        assertFalse(parse("c.yaml", "--quiet", "--no-quiet").quiet);
        assertEquals(500_000_000L, parse("c.yaml", "--out-shard-size", "500M").shardBytes());
        assertFalse(parse("c.yaml", "--no-copy-tokenizer").mergeOptions().copyTokenizer());
        assertFalse(parse("c.yaml", "--no-write-model-card").mergeOptions().writeModelCard());
        assertNull(parse("c.yaml", "--device", "cpu").devices(System.err), "--device cpu runs the Java kernels on CPU lanes");
        MergeException e = assertThrows(MergeException.class, () -> parse("c.yaml", "--device", "xpu").devices(System.err));
        assertTrue(e.getMessage().contains("--device xpu"), e.getMessage());
        assertTrue(parse("c.yaml", "--multi-gpu").multigpu);
        assertTrue(parse("c.yaml", "--multigpu").multigpu);
    }

    @Test
    void aTypicalMergekitLineRunsWithOneNoteForEachOptionThatNeedsNothing() throws Exception {
        Path plain = dir.resolve("plain"), compat = dir.resolve("compat");
        TestSupport.Result p = TestSupport.cli(cfg.toString(), plain.toString());
        assertEquals(0, p.exitCode(), p.stderr());
        List<String> args = new ArrayList<>(List.of(cfg.toString(), compat.toString(), "--cuda", "--no-cuda", "--allow-crimes", "--safe-serialization",
                "--no-quiet", "--copy-tokenizer", "--write-model-card", "--random-seed", "42"));
        for (String[] n : NOTED) args.add(n[0]);
        TestSupport.Result r = TestSupport.cli(args.toArray(String[]::new));
        assertEquals(0, r.exitCode(), r.stderr());
        for (String[] n : NOTED) {
            int first = r.stderr().indexOf(n[1]);
            assertTrue(first >= 0, n[0] + " has a note: " + r.stderr());
            assertEquals(-1, r.stderr().indexOf(n[1], first + 1), n[0] + " has one note");
        }
        assertFalse(r.stderr().contains("Usage"), r.stderr());
        List<Path> a = weights(plain).toList(), b = weights(compat).toList();
        assertEquals(a.size(), b.size());
        for (int i = 0; i < a.size(); i++) assertArrayEquals(Files.readAllBytes(a.get(i)), Files.readAllBytes(b.get(i)), "same bytes as a plain run");
    }

    @Test
    void deviceCudaAndGpuRichAreCuda() {
        TestSupport.Result cuda = TestSupport.cli(cfg.toString(), dir.resolve("cuda").toString(), "--cuda", "--quiet");
        for (String[] opts : new String[][] {{"--device", "cuda"}, {"--gpu-rich"}}) {
            TestSupport.Result r = TestSupport.cli(cfg.toString(), dir.resolve("cuda-" + opts.length).toString(), opts[0], opts.length > 1 ? opts[1] : "--quiet",
                    "--quiet");
            assertEquals(cuda.exitCode(), r.exitCode(), String.join(" ", opts) + " runs as --cuda: " + r.stderr() + " / " + cuda.stderr());
            if (cuda.exitCode() != 0) assertEquals(cuda.stderr(), r.stderr(), "the same failure as --cuda on a machine without a GPU");
        }
    }

    @Test
    void quietSilencesTheNotes() {
        TestSupport.Result r = TestSupport.cli(cfg.toString(), dir.resolve("quiet").toString(), "--lazy-unpickle", "--quiet");
        assertEquals(0, r.exitCode(), r.stderr());
        assertFalse(r.stderr().contains("note:"), r.stderr());
    }

    @Test
    void onlyWhatCannotBeHonouredIsRefused() {
        Path out = dir.resolve("pickle");
        TestSupport.Result r = TestSupport.cli(cfg.toString(), out.toString(), "--no-safe-serialization");
        assertEquals(2, r.exitCode());
        assertTrue(r.stderr().startsWith("error: ") && r.stderr().contains("always safetensors"), r.stderr());
        assertFalse(Files.exists(out));
        TestSupport.Result typo = TestSupport.cli(cfg.toString(), out.toString(), "--lazy-unpicle");
        assertEquals(2, typo.exitCode());
        assertTrue(typo.stderr().contains("--lazy-unpickle"), "a misspelt option gets a suggestion: " + typo.stderr());
        assertFalse(typo.stderr().contains("Usage:"), "not the whole usage: " + typo.stderr());
    }

    @Test
    void extractLoraTakesTheMergeOptionsAndRefusesAFolderItDidNotWrite() throws Exception {
        Path adapter = dir.resolve("adapter");
        String[] line = {"extract-lora", "--model", dir.resolve("ft1").toString(), "--base-model", dir.resolve("base").toString(), "--out-path",
            adapter.toString(), "--max-rank", "4", "--no-distribute-scale", "--embed-lora", "--sv-epsilon", "0", "--skip-undecomposable",
            "--lazy-unpickle", "--out-shard-size", "1B", "--cuda", "-v", "--num-threads", "1", "--random-seed", "3", "--trust-remote-code"};
        TestSupport.Result r = TestSupport.cli(line);
        assertEquals(0, r.exitCode(), r.stderr());
        assertTrue(Files.exists(adapter.resolve("adapter_model.safetensors")));
        assertTrue(r.stderr().contains("--lazy-unpickle is not needed") && r.stderr().contains("--out-shard-size has no effect on extract-lora")
                && r.stderr().contains("--cuda has no effect on extract-lora"), r.stderr());
        TestSupport.Result again = TestSupport.cli(line);
        assertEquals(0, again.exitCode(), "its own earlier output is replaced: " + again.stderr());

        Path foreign = Files.createDirectories(dir.resolve("foreign"));
        Files.writeString(foreign.resolve("notes.txt"), "mine");
        line[6] = foreign.toString();
        TestSupport.Result refused = TestSupport.cli(line);
        assertEquals(2, refused.exitCode(), refused.stderr());
        assertTrue(refused.stderr().contains("not empty") && refused.stderr().contains("notes.txt"), refused.stderr());
        assertEquals(List.of(foreign.resolve("notes.txt")), Files.list(foreign).toList(), "nothing was written beside the file");
    }

    @Test
    void multiTakesTheMergeOptions() throws Exception {
        Path yaml = Files.writeString(dir.resolve("multi.yaml"), "name: a\nmerge_method: linear\nmodels:\n  - {model: base, parameters: {weight: 0.5}}\n"
                + "  - {model: ft1, parameters: {weight: 0.5}}\n---\nmerge_method: task_arithmetic\nbase_model: base\nmodels:\n"
                + "  - {model: a, parameters: {weight: 0.5}}\n");
        Path inter = dir.resolve("inter"), out = dir.resolve("multi-out");
        TestSupport.Result dry = TestSupport.cli("multi", yaml.toString(), "-I", inter.toString(), "--out-path", out.toString(), "--dry-run", "-v");
        assertEquals(0, dry.exitCode(), dry.stderr());
        assertTrue(dry.stdout().contains("a: linear") && dry.stdout().contains("tensors") && dry.stdout().contains("uses a"), dry.stdout());
        assertFalse(Files.exists(inter) || Files.exists(out), "a dry run writes nothing");

        TestSupport.Result run = TestSupport.cli("multi", yaml.toString(), "-I", inter.toString(), "--out-path", out.toString(),
                "--no-copy-tokenizer", "--no-write-model-card", "--lazy-unpickle", "--lazy");
        assertEquals(0, run.exitCode(), run.stderr());
        assertTrue(run.stderr().contains("--lazy-unpickle is not needed"), run.stderr());
        assertTrue(Files.exists(out.resolve("config.json")));
        assertFalse(Files.exists(out.resolve("tokenizer.json")), "--no-copy-tokenizer reaches the stages");
        assertFalse(Files.exists(out.resolve("README.md")), "--no-write-model-card reaches the stages");

        TestSupport.Result lazy = TestSupport.cli("multi", yaml.toString(), "-I", inter.toString(), "--out-path", out.toString(),
                "--no-copy-tokenizer", "--no-write-model-card");
        assertTrue(lazy.stderr().contains("a: skipped"), lazy.stderr());
        TestSupport.Result eager = TestSupport.cli("multi", yaml.toString(), "-I", inter.toString(), "--out-path", out.toString(),
                "--no-copy-tokenizer", "--no-write-model-card", "--no-lazy");
        assertEquals(0, eager.exitCode(), eager.stderr());
        assertTrue(eager.stderr().contains("a: running") && !eager.stderr().contains("skipped"), "--no-lazy reruns every stage: " + eager.stderr());
    }

    @Test
    void everyOptionOfEveryCommandIsDescribed() {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        PrintStream ps = new PrintStream(sink, true, StandardCharsets.UTF_8);
        CommandLine cl = Main.commandLine(new Main(ps, ps), ps, ps);
        List<CommandLine> all = new ArrayList<>(List.of(cl));
        all.addAll(cl.getSubcommands().values());
        for (CommandLine c : all) {
            for (CommandLine.Model.OptionSpec o : c.getCommandSpec().options()) {
                if (o.hidden()) continue;
                assertTrue(o.description().length > 0 && !o.description()[0].isBlank(), c.getCommandName() + " " + o.longestName() + " has no description");
            }
        }
    }
}
