package org.mergeengine.lora;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Pattern;
import org.mergeengine.MergeException;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.formats.ShardLayout;
import org.mergeengine.formats.TensorInfo;
import org.mergeengine.plan.ModelLayout;
import org.mergeengine.tensor.Convert;
import org.mergeengine.tensor.Svd;

/**
 * Extracts a PEFT LoRA adapter from a fine-tune: each weight's difference from the base is cut to
 * its top singular directions (A = √σ·V^T, B = U·√σ, or A = σ·V^T, B = U without
 * distribute_scale); embeddings and undecomposable tensors are saved whole as modules_to_save.
 * The adapter's scale is 1 everywhere (r = lora_alpha, per-module ranks in rank_pattern).
 */
public final class LoraExtractor {
    public enum SvdMode { AUTO, EXACT, RANDOMIZED }

    public record Options(int maxRank, boolean distributeScale, boolean embedLora, List<String> saveModules, List<Pattern> include,
                          List<Pattern> exclude, double svEpsilon, boolean skipUndecomposable, SvdMode svd, int workers, long seed) {}

    /** What was extracted: per decomposed module its rank and the squared Frobenius norm it discarded. */
    public record Report(Map<String, Integer> ranks, Map<String, Double> discarded, List<String> saved, List<String> warnings) {}

    private record Decomposed(String module, TensorInfo like, boolean embedding, int rank, float[] a, float[] b, int rows, int cols, double discarded) {}

    private LoraExtractor() {}

    public static Report extract(ModelFolder ft, ModelFolder base, String baseName, Path out, Options o) throws IOException {
        List<String> warnings = new ArrayList<>();
        boolean embedLora = o.embedLora();
        if (embedLora && vocab(ft) != vocab(base)) {
            warnings.add("the models' vocabularies differ (" + vocab(ft) + " vs " + vocab(base) + "): embeddings are saved whole, not as LoRA");
            embedLora = false;
        }
        List<String> saved = new ArrayList<>();
        List<String> toDecompose = new ArrayList<>();
        for (Map.Entry<String, ModelFolder.Located> e : ft.tensors().entrySet()) {
            String name = e.getKey();
            if (!name.endsWith(".weight")) {
                warnings.add(name + " is not a weight and is left out of the adapter");
                continue;
            }
            String module = name.substring(0, name.length() - 7);
            if (!selected(module, o)) continue;
            TensorInfo t = e.getValue().info();
            ModelFolder.Located b = base.tensor(name);
            boolean embedding = ModelLayout.isInputEmbedding(name) || ModelLayout.isLmHead(name);
            boolean save = o.saveModules().contains(module) || o.saveModules().contains(last(module)) || (embedding && !embedLora);
            if (!save && (t.rank() != 2 || b == null || !Arrays.equals(b.info().shape(), t.shape()))) {
                if (b != null && t.rank() == 2 && !embedding) {
                    throw MergeException.user(name + " is " + t.shapeString() + " in the fine-tune but " + b.info().shapeString() + " in the base: they are not the same architecture");
                }
                if (o.skipUndecomposable()) continue;
                save = true;
            }
            if (save) saved.add(name);
            else toDecompose.add(name);
        }

        List<Decomposed> done = new ArrayList<>();
        ExecutorService pool = Executors.newFixedThreadPool(Math.max(1, o.workers()));
        try {
            List<Future<Decomposed>> futures = new ArrayList<>();
            for (String name : toDecompose) futures.add(pool.submit(() -> decompose(ft, base, name, o)));
            for (Future<Decomposed> f : futures) done.add(f.get());
        } catch (ExecutionException e) {
            Throwable cause = MergeException.unwrap(e);
            if (cause instanceof RuntimeException re) throw re;
            throw new IOException(cause);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted");
        } finally {
            pool.shutdownNow();
        }
        write(ft, out, done, saved, baseName);
        Map<String, Integer> ranks = new LinkedHashMap<>();
        Map<String, Double> discarded = new LinkedHashMap<>();
        for (Decomposed d : done) {
            ranks.put(d.module, d.rank);
            discarded.put(d.module, d.discarded);
        }
        return new Report(ranks, discarded, saved, warnings);
    }

    private static boolean selected(String module, Options o) {
        if (!o.include().isEmpty() && o.include().stream().noneMatch(p -> p.matcher(module).find())) return false;
        return o.exclude().stream().noneMatch(p -> p.matcher(module).find());
    }

    static String last(String module) {
        int i = module.lastIndexOf('.');
        return i < 0 ? module : module.substring(i + 1);
    }

    private static int vocab(ModelFolder m) {
        return m.config() != null ? m.config().path("vocab_size").asInt(-1) : -1;
    }

    private static Decomposed decompose(ModelFolder ft, ModelFolder base, String name, Options o) {
        TensorInfo t = ft.tensor(name).info();
        int r0 = (int) t.shape()[0], c0 = (int) t.shape()[1];
        float[] x = read(ft.tensor(name)), y = read(base.tensor(name));
        boolean embedding = ModelLayout.isInputEmbedding(name);
        // An nn.Embedding update is stored transposed: decompose delta^T [dim, vocab].
        int rows = embedding ? c0 : r0, cols = embedding ? r0 : c0;
        float[] d = new float[x.length];
        for (int i = 0; i < r0; i++) {
            for (int j = 0; j < c0; j++) {
                float v = x[i * c0 + j] - y[i * c0 + j];
                if (embedding) d[j * r0 + i] = v; else d[i * c0 + j] = v;
            }
        }
        int full = Math.min(rows, cols);
        int want = Math.min(o.maxRank(), full);
        boolean exact = o.svd() == SvdMode.EXACT || (o.svd() == SvdMode.AUTO && (full <= 512 || want * 4 >= full));
        Svd.Result s = exact ? Svd.exact(d, rows, cols) : Svd.randomized(d, rows, cols, want, 10, 3, o.seed());
        int k = Math.min(want, s.n());
        if (o.svEpsilon() > 0) {
            int above = 0;
            while (above < s.n() && s.s()[above] > o.svEpsilon()) above++;
            k = Math.min(k, above);
        }
        k = Math.max(k, 1);
        double total = 0;
        for (float v : d) total += v * (double) v;
        double kept = 0;
        for (int j = 0; j < k; j++) kept += s.s()[j] * s.s()[j];
        float[] a = new float[k * cols], b = new float[rows * k];
        for (int j = 0; j < k; j++) {
            double fa = o.distributeScale() ? Math.sqrt(s.s()[j]) : s.s()[j];
            double fb = o.distributeScale() ? Math.sqrt(s.s()[j]) : 1.0;
            for (int c = 0; c < cols; c++) a[j * cols + c] = (float) (fa * s.v()[c * s.n() + j]);
            for (int r = 0; r < rows; r++) b[r * k + j] = (float) (fb * s.u()[r * s.n() + j]);
        }
        String module = name.substring(0, name.length() - 7);
        return new Decomposed(module, t, embedding, k, a, b, rows, cols, Math.max(0, total - kept));
    }

    private static float[] read(ModelFolder.Located l) {
        TensorInfo t = l.info();
        float[] v = new float[(int) t.numel()];
        int es = t.dtype().size(), step = (64 << 20) / es;
        for (int s = 0; s < v.length; s += step) {
            int n = Math.min(step, v.length - s);
            Convert.decode(t.dtype(), l.file().read(t, (long) s * es, n * es), v, s, n);
        }
        return v;
    }

    private static void write(ModelFolder ft, Path out, List<Decomposed> done, List<String> saved, String baseName) throws IOException {
        Files.createDirectories(out);
        List<ShardLayout.Entry> entries = new ArrayList<>();
        Map<String, float[]> lowRank = new LinkedHashMap<>();
        int maxRank = 1;
        for (Decomposed d : done) {
            DType dt = d.like.dtype().isFloating() ? d.like.dtype() : DType.F32;
            String pa = d.embedding ? ".lora_embedding_A" : ".lora_A.weight", pb = d.embedding ? ".lora_embedding_B" : ".lora_B.weight";
            String an = "base_model.model." + d.module + pa, bn = "base_model.model." + d.module + pb;
            entries.add(new ShardLayout.Entry(an, dt, new long[] {d.rank, d.cols}));
            entries.add(new ShardLayout.Entry(bn, dt, new long[] {d.rows, d.rank}));
            lowRank.put(an, d.a);
            lowRank.put(bn, d.b);
            maxRank = Math.max(maxRank, d.rank);
        }
        for (String name : saved) {
            TensorInfo t = ft.tensor(name).info();
            entries.add(new ShardLayout.Entry("base_model.model." + name, t.dtype(), t.shape()));
        }
        ShardLayout layout = ShardLayout.plan(entries, 0, "adapter_model");
        Path tmp = Files.createTempDirectory(out, ".adapter-");
        try (SafetensorsWriter w = new SafetensorsWriter(tmp, layout)) {
            for (ShardLayout.Entry e : entries) {
                float[] v = lowRank.get(e.name());
                if (v != null) {
                    ByteBuffer buf = ByteBuffer.allocate(v.length * e.dtype().size()).order(ByteOrder.LITTLE_ENDIAN);
                    Convert.encode(e.dtype(), v, 0, v.length, buf);
                    w.write(e.name(), 0, buf.flip());
                } else {
                    ModelFolder.Located l = ft.tensor(e.name().substring("base_model.model.".length()));
                    long size = l.info().byteSize();
                    for (long s = 0; s < size; s += 64 << 20) {
                        w.write(e.name(), s, l.file().read(l.info(), s, (int) Math.min(64 << 20, size - s)));
                    }
                }
            }
            w.finish();
        }
        Files.move(tmp.resolve("adapter_model.safetensors"), out.resolve("adapter_model.safetensors"), StandardCopyOption.REPLACE_EXISTING);
        Files.delete(tmp);

        ObjectNode c = Json.MAPPER.createObjectNode();
        c.put("peft_type", "LORA");
        c.put("task_type", "CAUSAL_LM");
        c.put("base_model_name_or_path", baseName);
        c.put("r", maxRank);
        c.put("lora_alpha", maxRank);
        c.put("lora_dropout", 0.0);
        c.put("use_rslora", false);
        c.put("fan_in_fan_out", false);
        c.put("inference_mode", true);
        c.put("bias", "none");
        TreeSet<String> targets = new TreeSet<>();
        TreeMap<String, Integer> pattern = new TreeMap<>();
        for (Decomposed d : done) {
            targets.add(last(d.module));
            if (d.rank != maxRank) pattern.put(d.module, d.rank);
        }
        ArrayNode tm = c.putArray("target_modules");
        targets.forEach(tm::add);
        ObjectNode rp = c.putObject("rank_pattern"), ap = c.putObject("alpha_pattern");
        pattern.forEach((m, r) -> {
            rp.put(m, r);
            ap.put(m, r);
        });
        ArrayNode ms = c.putArray("modules_to_save");
        TreeSet<String> save = new TreeSet<>();
        for (String s : saved) save.add(last(s.substring(0, s.length() - 7)));
        save.forEach(ms::add);
        Json.write(out.resolve("adapter_config.json"), c);
        Files.writeString(out.resolve("README.md"), "---\nlibrary_name: peft\nbase_model: " + baseName + "\ntags:\n- merge-engine\n- lora\n---\n"
                + "# LoRA extracted with merge-engine\n\nA rank-" + maxRank + " LoRA adapter holding the difference between a fine-tune and `"
                + baseName + "`, from a truncated SVD of each weight's difference. Embeddings and other tensors that are not low-rank"
                + " are stored whole (modules_to_save).\n", StandardCharsets.UTF_8);
    }
}
