package org.mergeengine.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.ModelEdit;
import org.mergeengine.TestSupport;
import org.mergeengine.formats.DType;
import org.mergeengine.tensor.Convert;
import org.mergeengine.tools.SyntheticModel;
import org.slf4j.LoggerFactory;

/** NaN and infinite input values: a warning naming model, tensor and count, or an error with --fail-on-nonfinite. */
class NonFiniteInputsTest {
    @TempDir
    Path dir;

    static final String TENSOR = "model.layers.1.self_attn.q_proj.weight";

    @Test
    void countsNonFiniteValuesInEveryFloatEncoding() {
        float[] v = {1f, Float.NaN, Float.POSITIVE_INFINITY, -0f, Float.NEGATIVE_INFINITY, 65504f, -3.5f, Float.MIN_VALUE};
        assertEquals(3, NonFinite.count(v, 0, v.length));
        assertEquals(2, NonFinite.count(v, 1, 2));
        for (DType dt : new DType[] {DType.F32, DType.F16, DType.BF16, DType.F64}) {
            ByteBuffer b = ByteBuffer.allocate(v.length * dt.size()).order(ByteOrder.LITTLE_ENDIAN);
            Convert.encode(dt, v, 0, v.length, b);
            b.flip();
            assertEquals(3, NonFinite.count(dt, b), dt.toString());
            assertEquals(0, b.position(), "the buffer is left as it was");
        }
        ByteBuffer f16 = ByteBuffer.allocate(2).order(ByteOrder.LITTLE_ENDIAN).putShort(0, (short) 0x7bff); // 65504, the largest finite half
        assertEquals(0, NonFinite.count(DType.F16, f16));
        assertEquals(2, NonFinite.count(DType.F8_E5M2, ByteBuffer.wrap(new byte[] {0x7c, (byte) 0xfe, 0x7b})));
        assertEquals(1, NonFinite.count(DType.F8_E4M3, ByteBuffer.wrap(new byte[] {0x7f, 0x7e})));
        assertEquals(0, NonFinite.count(DType.I32, ByteBuffer.wrap(new byte[] {-1, -1, -1, 0x7f})));
    }

    @Test
    void halfWidthCountsAgreeWithAValueByValueCountAtAnyOffsetAndPlacement() {
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(7);
        short[] specials = {(short) 0x7f80, (short) 0xff80, (short) 0x7fc1, (short) 0x7c00, (short) 0xfc00, (short) 0x7e00, (short) 0x7f7f, (short) 0x7bff, (short) 0x8000, 0};
        for (int round = 0; round < 2000; round++) {
            int n = 1 + rnd.nextInt(40);
            ByteBuffer b = ByteBuffer.allocate(2 * n + 2).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < n + 1; i++) {
                short v = rnd.nextInt(4) == 0 ? specials[rnd.nextInt(specials.length)] : (short) rnd.nextInt(1 << 16);
                b.putShort(2 * i, v);
            }
            int from = 2 * rnd.nextInt(n + 1), to = from + 2 * rnd.nextInt(n + 1 - from / 2 + 1);
            to = Math.min(to, 2 * n + 2);
            b.position(0).limit(to).position(from);
            for (DType dt : new DType[] {DType.BF16, DType.F16}) {
                int exponent = dt == DType.BF16 ? 0x7f80 : 0x7c00, expected = 0;
                for (int i = from; i + 2 <= to; i += 2) if ((b.getShort(i) & exponent) == exponent) expected++;
                assertEquals(expected, NonFinite.count(dt, b), dt + " round " + round);
            }
        }
    }

    private Path config(String method) throws Exception {
        if (!Files.exists(dir.resolve("bad"))) {
            SyntheticModel.write(dir.resolve("a"), SyntheticModel.Spec.tiny(), DType.BF16, 1, 1, 0, 0);
            SyntheticModel.write(dir.resolve("b"), SyntheticModel.Spec.tiny(), DType.BF16, 1, 2, 0.1, 0);
            ModelEdit.copy(dir.resolve("b"), dir.resolve("bad"), (n, v) -> {
                if (n.equals(TENSOR)) {
                    v[3] = Float.NaN;
                    v[7] = Float.NEGATIVE_INFINITY;
                }
                return v;
            });
        }
        if (method.equals("passthrough")) return Files.writeString(dir.resolve(method + ".yaml"), "merge_method: passthrough\nmodels:\n  - model: " + dir.resolve("bad") + "\n");
        String models = method.equals("slerp")
                ? "base_model: " + dir.resolve("a") + "\nparameters: {t: 0.5}\nmodels:\n  - model: " + dir.resolve("a") + "\n  - model: " + dir.resolve("bad") + "\n"
                : "models:\n  - {model: " + dir.resolve("a") + ", parameters: {weight: 0.5}}\n  - {model: " + dir.resolve("bad") + ", parameters: {weight: 0.5}}\n";
        return Files.writeString(dir.resolve(method + ".yaml"), "merge_method: " + method + "\n" + models);
    }

    @Test
    void aWarningNamesTheModelTheTensorAndTheCount() throws Exception {
        Logger log = (Logger) LoggerFactory.getLogger(NonFinite.class);
        ListAppender<ILoggingEvent> seen = new ListAppender<>();
        seen.start();
        log.addAppender(seen);
        try {
            for (String method : List.of("linear", "slerp", "passthrough")) {
                seen.list.clear();
                TestSupport.Result r = TestSupport.cli(config(method).toString(), dir.resolve("out-" + method).toString());
                assertEquals(0, r.exitCode(), r.stderr());
                List<String> warnings = seen.list.stream().map(ILoggingEvent::getFormattedMessage).toList();
                assertEquals(1, warnings.size(), method + ": " + warnings);
                String w = warnings.get(0);
                assertTrue(w.contains(dir.resolve("bad").toString()) && w.contains(TENSOR) && w.contains("holds 2 NaN or infinite values"), method + ": " + w);
            }
        } finally {
            log.detachAppender(seen);
        }
    }

    @Test
    void failOnNonFiniteMakesItAnErrorAndWritesNoOutput() throws Exception {
        Path out = dir.resolve("out");
        TestSupport.Result r = TestSupport.cli(config("linear").toString(), out.toString(), "--quiet", "--fail-on-nonfinite");
        assertEquals(2, r.exitCode(), r.stderr());
        assertTrue(r.stderr().contains(dir.resolve("bad").toString()) && r.stderr().contains(TENSOR) && r.stderr().contains("2 NaN or infinite values"), r.stderr());
        assertFalse(Files.exists(out));
        try (var s = Files.list(dir)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().startsWith(".out")), "no temporary folder or lock is left");
        }
    }
}
