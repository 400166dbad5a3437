package org.mergeengine.cli;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.mergeengine.MergeException;
import org.mergeengine.engine.OutputFolder;
import org.mergeengine.formats.DType;
import org.mergeengine.tools.SyntheticModel;
import picocli.CommandLine.Command;

/**
 * {@code warm-up}: runs a few merges of tiny generated models in a temporary folder, through the
 * same code paths as a real merge, and deletes them. The launcher runs it once per JDK and jar
 * with {@code -XX:ArchiveClassesAtExit}, so that later runs start from an archive of the classes
 * a merge loads instead of reading and verifying them from the jar each time.
 */
@Command(name = "warm-up", mixinStandardHelpOptions = true, hidden = true,
        description = "Runs small merges of generated models (used to build the launcher's class-data archive).")
final class WarmUpCommand implements Callable<Integer> {
    private static final String[] METHODS = {
        "merge_method: linear\nmodels:\n  - model: base\n    parameters: {weight: 0.5}\n  - model: ft1\n    parameters: {weight: 0.5}\n",
        "merge_method: ties\nbase_model: base\nmodels:\n  - model: ft1\n    parameters: {weight: 0.5, density: 0.5}\n"
                + "  - model: ft2\n    parameters: {weight: 0.5, density: 0.5}\n",
        "merge_method: slerp\nbase_model: base\nmodels:\n  - model: base\n  - model: ft1\nparameters: {t: 0.3}\n",
    };

    @Override
    public Integer call() throws Exception {
        Path dir = Files.createTempDirectory("merge-engine-warm-up");
        try {
            SyntheticModel.Spec s = SyntheticModel.Spec.tiny();
            SyntheticModel.write(dir.resolve("base"), s, DType.BF16, 3, 3, 0, 0);
            SyntheticModel.write(dir.resolve("ft1"), s, DType.BF16, 3, 4, 0.1, 0);
            SyntheticModel.write(dir.resolve("ft2"), s, DType.F16, 3, 5, 0.1, 0);
            PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());
            for (int i = 0; i < METHODS.length; i++) {
                Path cfg = Files.writeString(dir.resolve("m" + i + ".yaml"), METHODS[i]);
                ByteArrayErr err = new ByteArrayErr();
                int rc = Main.run(new String[] {cfg.toString(), dir.resolve("out" + i).toString(), "--quiet"}, quiet, err.stream);
                if (rc != 0) throw MergeException.user("warm-up merge " + (i + 1) + " failed: " + err);
            }
            return 0;
        } finally {
            OutputFolder.deleteTree(dir);
        }
    }

    private static final class ByteArrayErr {
        final java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        final PrintStream stream = new PrintStream(bytes, true, java.nio.charset.StandardCharsets.UTF_8);

        @Override
        public String toString() {
            return bytes.toString(java.nio.charset.StandardCharsets.UTF_8).trim();
        }
    }
}
