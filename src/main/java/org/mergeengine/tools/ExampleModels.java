package org.mergeengine.tools;

import java.io.IOException;
import java.nio.file.Path;
import org.mergeengine.formats.DType;

/**
 * Regenerates the small example models shipped in config/examples/models: a bf16 base and two
 * fine-tunes of it, deterministic to the byte.
 * {@code java -cp target/merge-engine.jar org.mergeengine.tools.ExampleModels config/examples/models}
 */
public final class ExampleModels {
    private ExampleModels() {}

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args.length > 0 ? args[0] : "config/examples/models");
        write(dir);
        System.out.println("wrote example models to " + dir);
    }

    public static void write(Path dir) throws IOException {
        SyntheticModel.Spec s = SyntheticModel.Spec.tiny();
        SyntheticModel.write(dir.resolve("base"), s, DType.BF16, 7, 7, 0, 0);
        SyntheticModel.write(dir.resolve("ft1"), s, DType.BF16, 7, 101, 0.15, 0);
        SyntheticModel.write(dir.resolve("ft2"), s, DType.BF16, 7, 102, 0.15, 0);
    }
}
