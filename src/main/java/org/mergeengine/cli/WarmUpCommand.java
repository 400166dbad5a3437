package org.mergeengine.cli;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.mergeengine.MergeException;
import org.mergeengine.engine.OutputFolder;
import org.mergeengine.tools.ExampleModels;
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
            ExampleModels.write(dir);
            PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());
            for (int i = 0; i < METHODS.length; i++) {
                Path cfg = Files.writeString(dir.resolve("m" + i + ".yaml"), METHODS[i]);
                ByteArrayOutputStream err = new ByteArrayOutputStream();
                int rc = Main.run(new String[] {cfg.toString(), dir.resolve("out" + i).toString(), "--quiet"}, quiet,
                        new PrintStream(err, true, StandardCharsets.UTF_8));
                if (rc != 0) throw MergeException.user("warm-up merge " + (i + 1) + " failed: " + err.toString(StandardCharsets.UTF_8).trim());
            }
            return 0;
        } finally {
            OutputFolder.deleteTree(dir);
        }
    }
}
