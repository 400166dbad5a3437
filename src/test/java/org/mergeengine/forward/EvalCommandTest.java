package org.mergeengine.forward;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.tools.SyntheticModel;

/** {@code eval}: perplexity of a tiny model on a text, against the float64 reference on the same windows. */
class EvalCommandTest {
    @TempDir
    Path tmp;

    @Test
    void perplexityMatchesTheReferenceOverTheSameWindows() throws Exception {
        TinyDecoders.Model m = TinyDecoders.write(tmp.resolve("m"), TinyDecoders.llama(), 21);
        // A word-level tokenizer: "<unk>", "<s>", "</s>", then single characters a.. in order, no BOS added.
        SyntheticModel.writeTokenizer(m.dir(), m.spec().vocab(), List.of());
        String letters = "thequickbrownfoxjumpsoverthelazydog";
        StringBuilder text = new StringBuilder();
        for (char c : letters.toCharArray()) text.append(c).append(' ');
        Path file = tmp.resolve("text.txt");
        Files.writeString(file, text.toString());
        int max = 27, ctx = 8;
        int[] ids = new int[max];
        for (int i = 0; i < max; i++) ids[i] = 3 + (letters.charAt(i) - 'a');

        TestSupport.Result r = TestSupport.cli("eval", m.dir().toString(), "--text", file.toString(),
                "--max-tokens", String.valueOf(max), "--context", String.valueOf(ctx), "--batch", "2", "-j", "2");
        assertEquals(0, r.exitCode(), r.stderr());

        ReferenceDecoder ref = new ReferenceDecoder(m);
        double nll = 0;
        int n = 0;
        List<int[]> windows = new ArrayList<>();
        for (int s = 0; s < max; s += ctx) windows.add(Arrays.copyOfRange(ids, s, Math.min(max, s + ctx)));
        for (int[] w : windows) {
            int[] mask = new int[w.length];
            Arrays.fill(mask, 1);
            for (double lp : ref.run(w, mask, 0).logProbs()) {
                nll -= lp;
                n++;
            }
        }
        assertEquals(max - windows.size(), n);
        double want = Math.exp(nll / n);
        Matcher pm = Pattern.compile("perplexity: ([0-9.]+)").matcher(r.stdout());
        assertTrue(pm.find(), r.stdout());
        assertEquals(want, Double.parseDouble(pm.group(1)), want * 1e-5, r.stdout());
        assertTrue(r.stdout().contains("tokens: 27 read, 23 scored, in 4 window(s) of up to 8, 2 per batch"), r.stdout());
        assertTrue(r.stdout().contains("tokens/s"), r.stdout());
    }

    @Test
    void badInputsExitTwoWithTheFileNamed() throws Exception {
        TinyDecoders.Model m = TinyDecoders.write(tmp.resolve("m"), TinyDecoders.qwen3(), 22);
        Path file = tmp.resolve("text.txt");
        Files.writeString(file, "a b c");
        TestSupport.Result noTok = TestSupport.cli("eval", m.dir().toString(), "--text", file.toString());
        assertEquals(2, noTok.exitCode());
        assertTrue(noTok.stderr().contains("tokenizer.json") && noTok.stderr().contains("missing"), noTok.stderr());

        SyntheticModel.writeTokenizer(m.dir(), 200, List.of());
        Files.writeString(file, "a b c Z z 9");
        TestSupport.Result outside = TestSupport.cli("eval", m.dir().toString(), "--text", file.toString());
        assertEquals(2, outside.exitCode());
        assertTrue(outside.stderr().contains("outside the model's vocabulary of 40"), outside.stderr());

        TestSupport.Result noText = TestSupport.cli("eval", m.dir().toString(), "--text", tmp.resolve("none.txt").toString());
        assertEquals(2, noText.exitCode());
        assertTrue(noText.stderr().contains("none.txt"), noText.stderr());

        TestSupport.Result help = TestSupport.cli("eval", "--help");
        assertEquals(0, help.exitCode());
        assertTrue(help.stdout().contains("--max-tokens") && help.stdout().contains("--batch"), help.stdout());
    }
}
