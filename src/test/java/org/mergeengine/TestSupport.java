package org.mergeengine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.mergeengine.cli.Main;
import org.mergeengine.formats.ModelFolder;
import org.mergeengine.formats.TensorInfo;
import org.mergeengine.tensor.Convert;

/** Helpers shared by the tests: run the CLI in-process and read tensors back. */
public final class TestSupport {
    private TestSupport() {}

    public record Result(int exitCode, String stdout, String stderr) {}

    public static Result cli(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int code = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    public static float[] floats(ModelFolder m, String name) {
        ModelFolder.Located l = m.tensor(name);
        if (l == null) throw new AssertionError("tensor " + name + " missing from " + m.dir());
        TensorInfo t = l.info();
        float[] out = new float[(int) t.numel()];
        Convert.decode(t.dtype(), l.file().read(t, 0, (int) t.byteSize()), out, 0, out.length);
        return out;
    }

    /** Lines in the journal of the temporary folder of output {@code out} (finished parts so far), 0 before it exists. */
    public static long journalLines(Path parent, String out) throws java.io.IOException {
        try (java.util.stream.Stream<Path> s = java.nio.file.Files.list(parent)) {
            for (Path p : s.filter(p -> p.getFileName().toString().startsWith("." + out + ".partial-")).toList()) {
                Path j = p.resolve(".merge-journal");
                if (java.nio.file.Files.exists(j)) return java.nio.file.Files.readString(j).lines().count();
            }
        }
        return 0;
    }

    /** The shared folder beside the checkout (specs and golden cases), as surefire passes it. */
    public static Path shared() {
        return Path.of(System.getProperty("merge.engine.shared", "../shared")).toAbsolutePath().normalize();
    }
}
