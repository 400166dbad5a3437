package org.mergeengine.fuzz;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;
import org.mergeengine.formats.DType;
import org.mergeengine.formats.FormatException;
import org.mergeengine.formats.SafetensorsFile;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.formats.TensorInfo;
import org.mergeengine.tensor.Convert;

/**
 * Property: whatever bytes stand where a safetensors file is expected (a valid file with jqwik's
 * choice of mutations), opening it ends in a correct read or a {@link FormatException} naming the
 * file, within seconds, and never allocates what the header claims.
 */
class SafetensorsPropertiesTest {
    static Path dir;
    static byte[] good;

    @BeforeContainer
    static void seed() throws Exception {
        dir = Files.createTempDirectory("st-props");
        Path f = dir.resolve("seed.safetensors");
        SafetensorsWriter.writeFile(f, List.of(
                Convert.tensorData("a", DType.BF16, new long[] {4, 8}, new float[32]),
                Convert.tensorData("b.weight", DType.F32, new long[] {3}, new float[] {1, 2, 3})));
        good = Files.readAllBytes(f);
    }

    @AfterContainer
    static void clean() {
        org.mergeengine.engine.OutputFolder.deleteTree(dir);
    }

    @Property(tries = 10_000, seed = "20261128")
    void anyMutationEndsInAClearErrorOrACorrectRead(@ForAll @IntRange(min = 0, max = 6) int kind, @ForAll long seed) throws Exception {
        byte[] m = ReaderFuzzTest.mutate(good, new java.util.Random(seed ^ kind * 0x9e3779b97f4a7c15L));
        Path f = dir.resolve("case.safetensors");
        Files.write(f, m);
        long t0 = System.nanoTime();
        try (SafetensorsFile sf = SafetensorsFile.open(f)) {
            for (TensorInfo t : sf.tensors().values()) {
                assertTrue(sf.dataStart() + t.end() <= m.length);
                if (t.byteSize() > 0) sf.read(t, 0, (int) t.byteSize());
            }
        } catch (FormatException e) {
            assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        }
        assertTrue(System.nanoTime() - t0 < 5_000_000_000L, "each case ends within 5 s (a hang fails)");
    }
}
