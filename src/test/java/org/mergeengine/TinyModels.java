package org.mergeengine;

import java.nio.file.Path;
import org.mergeengine.formats.DType;
import org.mergeengine.tools.SyntheticModel;

/** Writes a base and fine-tunes of the tiny Llama shape for tests. */
public final class TinyModels {
    private TinyModels() {}

    public static void write(Path dir, DType dt, int fineTunes) throws Exception {
        SyntheticModel.Spec s = SyntheticModel.Spec.tiny();
        SyntheticModel.write(dir.resolve("base"), s, dt, 1, 1, 0, 0);
        for (int i = 1; i <= fineTunes; i++) SyntheticModel.write(dir.resolve("ft" + i), s, dt, 1, 100 + i, 0.2, 0);
    }
}
