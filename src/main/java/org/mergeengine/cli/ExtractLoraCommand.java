package org.mergeengine.cli;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import org.mergeengine.MergeException;
import org.mergeengine.config.ModelRef;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.lora.LoraExtractor;
import org.mergeengine.plan.LocalModelResolver;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code extract-lora --model FT --base BASE [--max-rank R] OUT}: a PEFT adapter from a truncated SVD of FT - BASE. */
@Command(name = "extract-lora", mixinStandardHelpOptions = true, description = "Extracts a LoRA adapter from a fine-tuned model and its base.")
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

    @Option(names = {"--workers", "-j"}, paramLabel = "N", description = "parallel decompositions (default: CPU count)")
    int workers = Runtime.getRuntime().availableProcessors();

    private final PrintStream err;

    ExtractLoraCommand(PrintStream err) {
        this.err = err;
    }

    @Override
    public Integer call() throws Exception {
        Path target = out != null ? out : outPath;
        if (target == null) throw MergeException.user("give the output folder (OUT or --out-path)");
        if (maxRank < 1) throw MergeException.user("--max-rank must be at least 1");
        LoraExtractor.Options o = new LoraExtractor.Options(maxRank, distributeScale, embedLora, saveModules, patterns(include, "--include-regex"),
                patterns(exclude, "--exclude-regex"), svEpsilon, skipUndecomposable, svd, workers, 42);
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
