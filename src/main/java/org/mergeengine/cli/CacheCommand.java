package org.mergeengine.cli;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.mergeengine.MergeException;
import org.mergeengine.hub.CacheTool;
import org.mergeengine.hub.HubSettings;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code cache ls | verify | prune [--cache-dir DIR]}. */
@Command(name = "cache", mixinStandardHelpOptions = true, description = "Lists, verifies or prunes the hub cache.")
final class CacheCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "ACTION", description = "ls, verify or prune")
    String action;

    @Option(names = "--cache-dir", paramLabel = "DIR", description = "hub cache folder (default: HF_HUB_CACHE, else HF_HOME/hub)")
    Path cacheDir;

    private final PrintStream out;

    CacheCommand(PrintStream out) {
        this.out = out;
    }

    @Override
    public Integer call() throws Exception {
        CacheTool t = new CacheTool(HubSettings.fromEnvironment(System.getenv(), cacheDir, true).cacheDir(), out);
        switch (action) {
            case "ls":
                t.ls();
                return 0;
            case "verify":
                return t.verify() == 0 ? 0 : 2;
            case "prune":
                t.prune();
                return 0;
            default:
                throw MergeException.user("unknown cache action '" + action + "': use ls, verify or prune");
        }
    }
}
