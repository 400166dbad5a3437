package org.mergeengine;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BiFunction;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.SafetensorsWriter;
import org.mergeengine.formats.TensorInfo;
import org.mergeengine.tensor.Convert;

/** Copies a model folder while changing its tensors (tests build odd inputs from a normal one). */
public final class ModelEdit {
    private ModelEdit() {}

    /** {@code fn(name, values)} returns the new values, or null to leave the tensor out. */
    public static void copy(Path src, Path dst, BiFunction<String, float[], float[]> fn) throws Exception {
        Files.createDirectories(dst);
        List<SafetensorsWriter.TensorData> out = new ArrayList<>();
        try (ModelFolder m = ModelFolder.open(src)) {
            for (String name : m.tensors().keySet()) {
                TensorInfo t = m.tensor(name).info();
                float[] v = fn.apply(name, TestSupport.floats(m, name));
                if (v != null) out.add(Convert.tensorData(name, t.dtype(), t.shape(), v));
            }
        }
        SafetensorsWriter.writeFile(dst.resolve("model.safetensors"), out);
        try (var files = Files.list(src)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                String n = f.getFileName().toString();
                if (!n.endsWith(".safetensors") && !n.endsWith(".index.json")) Files.copy(f, dst.resolve(n));
            }
        }
    }
}
