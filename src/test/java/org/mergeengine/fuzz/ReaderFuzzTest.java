package org.mergeengine.fuzz;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.MergeException;
import org.mergeengine.config.ConfigParser;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.FormatException;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.SafetensorsFile;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.formats.TensorInfo;
import org.mergeengine.plan.LocalModelResolver;
import org.mergeengine.plan.PlanOptions;
import org.mergeengine.plan.Planner;
import org.mergeengine.tensor.Convert;
import org.mergeengine.tools.SyntheticModel;

/**
 * Seeded mutation fuzzing of everything that reads user files: safetensors files and headers,
 * sharded indexes, and YAML configs planned against real models. Every case must end in the
 * engine's own error (a {@link MergeException}) or a correct result, quickly: no other exception,
 * no hang, and no allocation driven by what a header claims.
 */
class ReaderFuzzTest {
    @TempDir
    Path dir;

    static final long SEED = 20261128L;

    static byte[] mutate(byte[] in, Random r) {
        byte[] b = in.clone();
        switch (r.nextInt(7)) {
            case 0: // flip bits
                for (int i = 0, n = 1 + r.nextInt(4); i < n; i++) b[r.nextInt(b.length)] ^= (byte) (1 << r.nextInt(8));
                return b;
            case 1: // truncate
                return java.util.Arrays.copyOf(b, r.nextInt(b.length));
            case 2: { // append junk
                byte[] t = java.util.Arrays.copyOf(b, b.length + 1 + r.nextInt(64));
                for (int i = b.length; i < t.length; i++) t[i] = (byte) r.nextInt(256);
                return t;
            }
            case 3: { // rewrite the header length
                long n = switch (r.nextInt(4)) {
                    case 0 -> r.nextLong();
                    case 1 -> 1L << (r.nextInt(63));
                    case 2 -> r.nextInt(b.length + 16);
                    default -> -1;
                };
                java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(0, n);
                return b;
            }
            case 4: { // change a digit inside the JSON header
                for (int tries = 0; tries < 20; tries++) {
                    int i = 8 + r.nextInt(Math.max(1, Math.min(b.length - 8, 400)));
                    if (i < b.length && Character.isDigit(b[i])) {
                        b[i] = (byte) ('0' + r.nextInt(10));
                        return b;
                    }
                }
                return b;
            }
            case 5: { // swap a JSON structural character
                byte[] chars = "{}[]:,\"0-9eE ".getBytes(StandardCharsets.US_ASCII);
                int i = 8 + r.nextInt(Math.max(1, Math.min(b.length - 8, 400)));
                if (i < b.length) b[i] = chars[r.nextInt(chars.length)];
                return b;
            }
            default: { // insert huge numbers into the shape
                String s = new String(b, StandardCharsets.ISO_8859_1);
                String huge = r.nextBoolean() ? "1152921504606846976" : "99999999999999999999999";
                s = s.replaceFirst("\"shape\":\\[\\d+", "\"shape\":[" + huge);
                return s.getBytes(StandardCharsets.ISO_8859_1);
            }
        }
    }

    @Test
    void mutatedSafetensorsFiles() throws Exception {
        Path seed = dir.resolve("seed.safetensors");
        SafetensorsWriter.writeFile(seed, List.of(
                Convert.tensorData("a", DType.BF16, new long[] {4, 8}, new float[32]),
                Convert.tensorData("b.weight", DType.F32, new long[] {3}, new float[] {1, 2, 3}),
                Convert.tensorData("c", DType.F16, new long[] {2, 2}, new float[] {1, -1, 0.5f, 2})));
        byte[] good = Files.readAllBytes(seed);
        Random r = new Random(SEED);
        Path f = dir.resolve("case.safetensors");
        int[] outcome = new int[2];
        assertTimeoutPreemptively(Duration.ofSeconds(120), () -> {
            for (int i = 0; i < 10_000; i++) {
                byte[] m = mutate(good, r);
                Files.write(f, m);
                long t0 = System.nanoTime();
                try (SafetensorsFile sf = SafetensorsFile.open(f)) {
                    for (TensorInfo t : sf.tensors().values()) {
                        assertTrue(sf.dataStart() + t.end() <= m.length, "case " + i + ": tensor beyond the file");
                        if (t.byteSize() > 0) sf.read(t, 0, (int) t.byteSize());
                    }
                    outcome[0]++;
                } catch (FormatException e) {
                    assertTrue(e.getMessage().contains(f.toString()), "case " + i + ": the error names the file: " + e.getMessage());
                    outcome[1]++;
                } catch (RuntimeException | OutOfMemoryError e) {
                    fail("case " + i + " ended in " + e + " instead of a clear error");
                }
                assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "case " + i + " took more than 5 s");
            }
        });
        assertEquals(10_000, outcome[0] + outcome[1]);
        System.out.println("safetensors fuzz: 10000 cases, " + outcome[0] + " read correctly, " + outcome[1] + " rejected with a clear error");
        assertTrue(outcome[1] > 5_000, "most mutations are rejected: " + outcome[1]);
    }

    @Test
    void mutatedIndexes() throws Exception {
        Path model = dir.resolve("m");
        SyntheticModel.write(model, SyntheticModel.Spec.tiny(), DType.F32, 1, 1, 0, 20_000);
        byte[] good = Files.readAllBytes(model.resolve("model.safetensors.index.json"));
        Random r = new Random(SEED + 1);
        int accepted = 0;
        for (int i = 0; i < 10_000; i++) {
            byte[] m = good.clone();
            String s = new String(m, StandardCharsets.UTF_8);
            switch (r.nextInt(5)) {
                case 0 -> s = s.replaceFirst("model-0000\\d", r.nextBoolean() ? "../../etc/passwd" : "/abs/model-00001");
                case 1 -> s = s.replaceFirst("\"model\\.layers\\.\\d+\\.[a-z_.]+\"", "\"no.such.tensor\"");
                case 2 -> s = s.substring(0, r.nextInt(s.length()));
                case 3 -> s = s.replace("weight_map", r.nextBoolean() ? "weights" : "weight_map\": 3, \"x");
                default -> {
                    char[] c = s.toCharArray();
                    c[r.nextInt(c.length)] = "{}[]:,\"0x".charAt(r.nextInt(9));
                    s = new String(c);
                }
            }
            Files.writeString(model.resolve("model.safetensors.index.json"), s);
            long t0 = System.nanoTime();
            try (ModelFolder f = ModelFolder.open(model)) {
                accepted++;
                assertTrue(f.tensors().size() > 0);
            } catch (MergeException e) {
                assertTrue(e.getMessage().contains("model"), e.getMessage());
            } catch (RuntimeException e) {
                fail("index case " + i + " ended in " + e + "\n" + s);
            }
            assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "index case " + i + " took more than 5 s");
        }
        Files.write(model.resolve("model.safetensors.index.json"), good);
        assertTrue(accepted < 10_000);
        System.out.println("index fuzz: 10000 cases, " + accepted + " opened, " + (10_000 - accepted) + " rejected with a clear error");
    }

    @Test
    void mutatedConfigs() throws Exception {
        SyntheticModel.Spec s = SyntheticModel.Spec.tiny();
        SyntheticModel.write(dir.resolve("base"), s, DType.F32, 1, 1, 0, 0);
        SyntheticModel.write(dir.resolve("ft"), s, DType.F32, 1, 2, 0.1, 0);
        String[] seeds = {
            "merge_method: ties\nbase_model: base\nmodels:\n  - model: ft\n    parameters: {density: [1, 0.5], weight: 0.7}\nparameters: {normalize: true}\ndtype: bfloat16\n",
            "merge_method: passthrough\nslices:\n  - sources: [{model: base, layer_range: [0, 2]}]\n  - sources: [{model: ft, layer_range: [1, 4]}]\n",
            "merge_method: slerp\nbase_model: base\nparameters:\n  t: [{filter: self_attn, value: [0, 1]}, {value: 0.5}]\nmodels:\n  - model: base\n  - model: ft\n",
            "merge_method: linear\ntokenizer:\n  source: union\n  tokens: {a: {source: base, force: true}}\nmodels:\n  - {model: base, parameters: {weight: 1}}\n  - {model: ft, parameters: {weight: 2}}\n",
        };
        String alphabet = "abcdefghijklmnopqrstuvwxyz_0123456789-.:[]{},'\"\n #@+!&*|>";
        Random r = new Random(SEED + 2);
        int planned = 0;
        try (LocalModelResolver res = new LocalModelResolver(List.of(dir))) {
            for (int i = 0; i < 1_000; i++) {
                char[] c = seeds[r.nextInt(seeds.length)].toCharArray();
                int edits = 1 + r.nextInt(3);
                StringBuilder sb = new StringBuilder(new String(c));
                for (int e = 0; e < edits; e++) {
                    int at = r.nextInt(sb.length());
                    switch (r.nextInt(3)) {
                        case 0 -> sb.setCharAt(at, alphabet.charAt(r.nextInt(alphabet.length())));
                        case 1 -> sb.deleteCharAt(at);
                        default -> sb.insert(at, alphabet.charAt(r.nextInt(alphabet.length())));
                    }
                }
                String yaml = sb.toString();
                long t0 = System.nanoTime();
                try {
                    var cfg = ConfigParser.parse(yaml);
                    Planner.checkConfig(cfg);
                    Planner.plan(cfg, res, PlanOptions.defaults());
                    planned++;
                } catch (MergeException e) {
                    assertTrue(e.getMessage() != null && !e.getMessage().isBlank());
                } catch (RuntimeException e) {
                    fail("config case " + i + " ended in " + e + "\n---\n" + yaml);
                }
                assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "config case " + i + " took more than 5 s");
            }
        }
        assertTrue(planned > 0 && planned < 1_000, "planned " + planned);
        System.out.println("config fuzz: 1000 cases, " + planned + " planned, " + (1_000 - planned) + " rejected with a clear error");
    }
}
