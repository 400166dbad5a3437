package org.mergeengine.cli;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import org.mergeengine.MergeException;
import org.mergeengine.forward.Batch;
import org.mergeengine.forward.DecoderForward;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code eval MODEL --text FILE}: perplexity of a model on a text file, computed by the layer-streamed
 * forward pass. The text is tokenized once with the model's tokenizer.json (special tokens as the
 * tokenizer adds them), cut to --max-tokens, and split into consecutive windows of --context
 * tokens; each window predicts its tokens after the first from the ones before, within the window.
 */
@Command(name = "eval", mixinStandardHelpOptions = true,
        description = "Perplexity of a model on a text file, the model streamed layer by layer.")
final class EvalCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "MODEL", description = "model folder (config.json, safetensors weights, tokenizer.json)")
    Path model;

    @Option(names = "--text", required = true, paramLabel = "FILE", description = "UTF-8 text to score")
    Path text;

    @Option(names = "--max-tokens", paramLabel = "N", description = "score at most the first N tokens of the text (default 2048)")
    int maxTokens = 2048;

    @Option(names = "--batch", paramLabel = "N", description = "windows per batch (default 1)")
    int batch = 1;

    @Option(names = "--context", paramLabel = "N", description = "tokens per window (default: max_position_embeddings, at most 1024)")
    Integer context;

    @Option(names = {"--workers", "-j"}, paramLabel = "N", description = "lanes the matrix products are split across (default: number of CPUs)")
    Integer workers;

    private final PrintStream out;
    private final PrintStream err;

    EvalCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    @Override
    public Integer call() throws IOException {
        if (maxTokens < 2) throw MergeException.user("--max-tokens must be at least 2");
        if (batch < 1) throw MergeException.user("--batch must be at least 1");
        if (workers != null && workers < 1) throw MergeException.user("--workers must be at least 1");
        if (context != null && context < 2) throw MergeException.user("--context must be at least 2");
        if (!Files.isDirectory(model)) throw MergeException.user(model + ": model folder does not exist");
        String content;
        try {
            content = Files.readString(text, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw MergeException.user(text + ": cannot read as UTF-8 text (" + e.getMessage() + ")");
        }
        int[] ids = tokenize(model.resolve("tokenizer.json"), content);
        if (ids.length > maxTokens) ids = Arrays.copyOf(ids, maxTokens);
        if (ids.length < 2) throw MergeException.user(text + ": gives " + ids.length + " token(s); perplexity needs at least 2");

        int lanes = workers != null ? workers : Runtime.getRuntime().availableProcessors();
        try (DecoderForward f = DecoderForward.open(model, lanes)) {
            int ctx = context != null ? context : defaultContext(f);
            List<Batch> batches = batches(ids, ctx, batch);
            long start = System.nanoTime();
            double[][][] lp = f.nextTokenLogProbs(batches);
            double seconds = (System.nanoTime() - start) / 1e9;
            double sum = 0;
            long scored = 0;
            for (double[][] b : lp) {
                for (double[] row : b) {
                    for (double v : row) {
                        if (Double.isNaN(v)) continue;
                        sum -= v;
                        scored++;
                    }
                }
            }
            double nll = sum / scored;
            int windows = (ids.length + ctx - 1) / ctx;
            out.printf(Locale.ROOT, "model: %s (%s, %d layers, hidden %d)%n", model, f.config().modelType(), f.numLayers(), f.hiddenSize());
            out.printf(Locale.ROOT, "tokens: %d read, %d scored, in %d window(s) of up to %d, %d per batch%n", ids.length, scored, windows, ctx, batch);
            out.printf(Locale.ROOT, "mean NLL: %.6f nats/token%n", nll);
            out.printf(Locale.ROOT, "perplexity: %.6f%n", Math.exp(nll));
            out.printf(Locale.ROOT, "time: %.2f s, %.1f tokens/s%n", seconds, ids.length / seconds);
        }
        return 0;
    }

    private static int defaultContext(DecoderForward f) {
        int max = f.config().maxPositions();
        return max > 1 ? Math.min(max, 1024) : 1024;
    }

    /**
     * Consecutive windows of {@code ctx} tokens, {@code per} to a batch. The shorter last window gets
     * a batch of its own, unpadded: a padded row's positions would differ from a real run's.
     */
    static List<Batch> batches(int[] ids, int ctx, int per) {
        List<int[]> full = new ArrayList<>();
        int[] rest = null;
        for (int s = 0; s < ids.length; s += ctx) {
            int[] w = Arrays.copyOfRange(ids, s, Math.min(ids.length, s + ctx));
            if (w.length == ctx) full.add(w);
            else if (w.length >= 2) rest = w;
        }
        List<Batch> out = new ArrayList<>();
        for (int i = 0; i < full.size(); i += per) out.add(Batch.unpadded(full.subList(i, Math.min(full.size(), i + per)).toArray(new int[0][])));
        if (rest != null) out.add(Batch.unpadded(new int[][] {rest}));
        return out;
    }

    static int[] tokenize(Path tokenizerJson, String content) throws IOException {
        if (!Files.isRegularFile(tokenizerJson)) {
            throw MergeException.user(tokenizerJson + ": missing; eval tokenizes the text with the model's tokenizer.json");
        }
        try (HuggingFaceTokenizer tok = HuggingFaceTokenizer.newInstance(tokenizerJson, Map.of("truncation", "false", "padding", "false"))) {
            Encoding e = tok.encode(content, true, false);
            long[] ids = e.getIds();
            int[] r = new int[ids.length];
            for (int i = 0; i < ids.length; i++) r[i] = Math.toIntExact(ids[i]);
            return r;
        } catch (RuntimeException e) {
            throw MergeException.user(tokenizerJson + ": cannot be loaded as a Hugging Face tokenizer (" + e.getMessage() + ")");
        }
    }
}
