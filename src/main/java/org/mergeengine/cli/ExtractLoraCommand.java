package org.mergeengine.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import java.util.stream.Stream;
import org.mergeengine.MergeException;
import org.mergeengine.config.ModelRef;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.lora.LoraExtractor;
import org.mergeengine.plan.LocalModelResolver;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.ParseResult;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code extract-lora --model FT --base BASE [--max-rank R] OUT}: a PEFT adapter from a truncated SVD of FT - BASE. */
@Command(name = "extract-lora", mixinStandardHelpOptions = true, abbreviateSynopsis = true, description = "Extracts a LoRA adapter from a fine-tuned model and its base (mergekit-extract-lora).")
final class ExtractLoraCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, paramLabel = "FT", description = "the fine-tuned model (path, or path+adapter)")
    String model;

    @Option(names = {"--base", "--base-model"}, required = true, paramLabel = "BASE", description = "the base model")
    String base;

    @Parameters(index = "0", arity = "0..1", paramLabel = "OUT", description = "output adapter folder")
    Path out;

    @Option(names = "--out-path", paramLabel = "OUT", description = "output adapter folder (mergekit's spelling)")
    Path outPath;

    @Option(names = "--max-rank", paramLabel = "R", description = "highest rank of any module (default 128)")
    int maxRank = 128;

    @Option(names = "--distribute-scale", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "split the singular values evenly between A and B (default on)")
    boolean distributeScale = true;

    @Option(names = "--embed-lora", negatable = true, defaultValue = "false", fallbackValue = "true",
            description = "decompose the embeddings too, instead of saving them whole")
    boolean embedLora;

    @Option(names = "--save-module", paramLabel = "NAME", description = "save this module whole (repeatable)")
    List<String> saveModules = new ArrayList<>();

    @Option(names = {"--include-regex", "-i"}, paramLabel = "REGEX", description = "only modules matching (repeatable)")
    List<String> include = new ArrayList<>();

    @Option(names = {"--exclude-regex", "-e"}, paramLabel = "REGEX", description = "leave out modules matching (repeatable)")
    List<String> exclude = new ArrayList<>();

    @Option(names = "--sv-epsilon", paramLabel = "EPS", description = "drop singular values at or below this (default 0)")
    double svEpsilon;

    @Option(names = "--skip-undecomposable", description = "leave out tensors that are not matrices instead of saving them whole")
    boolean skipUndecomposable;

    @Option(names = "--svd", paramLabel = "MODE", description = "auto (default), exact or randomized")
    LoraExtractor.SvdMode svd = LoraExtractor.SvdMode.AUTO;

    @Mixin
    MergeFlags flags = new MergeFlags();

    @Spec
    CommandSpec spec;

    /** Merge options that shape a merged model's output, which an adapter does not have. */
    private static final List<String> MERGE_ONLY = List.of("--out-shard-size", "--copy-tokenizer", "--write-model-card", "--allow-crimes",
            "--max-memory", "--multigpu", "--backend", "--cuda", "--device", "--gpu-rich", "--cache-dir", "--offline", "--mmap");

    /** The files an extraction writes: a folder holding only these (with its config) is an earlier adapter of ours. */
    static final Set<String> WRITTEN = Set.of("adapter_model.safetensors", "adapter_config.json", "README.md");

    private final PrintStream err;

    ExtractLoraCommand(PrintStream err) {
        this.err = err;
    }

    @Override
    public Integer call() throws Exception {
        Path target = out != null ? out : outPath;
        if (target == null) throw MergeException.user("give the output folder (OUT or --out-path)");
        if (maxRank < 1) throw MergeException.user("--max-rank must be at least 1");
        flags.printNotes(err);
        ParseResult parsed = spec.commandLine().getParseResult();
        for (String f : MERGE_ONLY) {
            if (parsed.hasMatchedOption(f) && !flags.quiet) err.println("note: " + f + " has no effect on extract-lora: it shapes a merged model's output or where models come from, and an adapter is extracted from two local folders");
        }
        flags.setLogLevel();
        checkOutput(target);
        LoraExtractor.Options o = new LoraExtractor.Options(maxRank, distributeScale, embedLora, saveModules, patterns(include, "--include-regex"),
                patterns(exclude, "--exclude-regex"), svEpsilon, skipUndecomposable, svd, flags.lanes(), flags.seed);
        Path cwd = Path.of("").toAbsolutePath();
        try (LocalModelResolver r = new LocalModelResolver(List.of(cwd))) {
            ModelFolder ft = r.resolve(ModelRef.parse(model, "--model"), "--model");
            ModelFolder b = r.resolve(ModelRef.parse(base, "--base"), "--base");
            LoraExtractor.Report rep = LoraExtractor.extract(ft, b, base, target, o);
            for (String w : rep.warnings()) err.println("warning: " + w);
            err.println("extracted " + rep.ranks().size() + " low-rank modules (rank <= " + maxRank + ") and " + rep.saved().size()
                    + " whole tensors into " + target);
        }
        return 0;
    }

    /** An output folder is written only when missing, empty, or an earlier extraction's (an adapter config and nothing we would not write). */
    static void checkOutput(Path out) throws IOException {
        if (!Files.exists(out)) return;
        if (!Files.isDirectory(out)) throw MergeException.user(out + " is a file, not an output folder");
        List<String> names;
        try (Stream<Path> s = Files.list(out)) {
            // .adapter-* is the temporary folder of an extraction into this folder that was interrupted.
            names = s.map(p -> p.getFileName().toString()).filter(n -> !n.startsWith(".adapter-")).sorted().toList();
        }
        if (names.isEmpty()) return;
        if (names.contains("adapter_config.json") && WRITTEN.containsAll(names)) return;
        throw MergeException.user(out + " is not empty and is not an earlier extract-lora output (it holds " + String.join(", ", names.subList(0, Math.min(5, names.size())))
                + (names.size() > 5 ? ", ..." : "") + "); give a new or empty folder");
    }

    private static List<Pattern> patterns(List<String> list, String flag) {
        List<Pattern> p = new ArrayList<>();
        for (String s : list) {
            try {
                p.add(Pattern.compile(s));
            } catch (PatternSyntaxException e) {
                throw MergeException.user(flag + " '" + s + "' is not a valid regular expression: " + e.getDescription());
            }
        }
        return p;
    }
}
