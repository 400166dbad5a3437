package org.mergeengine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.mergeengine.TestSupport;
import picocli.CommandLine;

/** Every command's --help renders cleanly: picocli reports a bad description on System.err, beside the help. */
class HelpTest {
    @Test
    void everyCommandsHelpRendersWithoutWarnings() {
        PrintStream saved = System.err;
        ByteArrayOutputStream direct = new ByteArrayOutputStream();
        try {
            System.setErr(new PrintStream(direct, true, StandardCharsets.UTF_8));
            List<String> commands = new ArrayList<>(List.of(""));
            commands.addAll(Main.commandLine(new Main(System.out, System.err), System.out, System.err).getSubcommands().keySet());
            assertTrue(commands.containsAll(List.of("extract-lora", "bench", "cache", "multi", "node")), commands.toString());
            for (String cmd : commands) {
                TestSupport.Result r = cmd.isEmpty() ? TestSupport.cli("--help") : TestSupport.cli(cmd, "--help");
                assertEquals(0, r.exitCode(), cmd + ": " + r.stderr());
                assertTrue(r.stdout().contains("Usage:"), cmd + ": " + r.stdout());
                assertFalse(r.stdout().contains("%n") || r.stderr().contains("picocli WARN"), cmd + ": " + r.stdout() + r.stderr());
            }
        } finally {
            System.setErr(saved);
        }
        String warnings = direct.toString(StandardCharsets.UTF_8);
        assertFalse(warnings.contains("picocli WARN"), warnings);
    }

    @Test
    void helpListsEverySubcommandWithALineEach() {
        TestSupport.Result r = TestSupport.cli("--help");
        CommandLine cl = Main.commandLine(new Main(System.out, System.err), System.out, System.err);
        String commands = r.stdout().substring(r.stdout().indexOf("Commands:"));
        for (Map.Entry<String, CommandLine> e : cl.getSubcommands().entrySet()) {
            boolean hidden = e.getValue().getCommandSpec().usageMessage().hidden();
            String line = "\n  " + e.getKey() + " ";
            assertEquals(!hidden, commands.contains(line), e.getKey() + " in " + commands);
        }
        assertTrue(commands.contains("multi") && commands.contains("extract-lora") && commands.contains("node"), commands);
        assertTrue(r.stdout().contains("merge-engine CONFIG [OUT_DIR]"), "the merge itself needs no command name: " + r.stdout());
    }

    @Test
    void theHelpCommandAndEachCommandFindTheirCommandThoughAStartBuildsOnlyWhatItRuns() {
        // A merge or a command builds only its own picocli model (a faster start); help still knows them all.
        for (String cmd : List.of("moe", "eval", "multi", "extract-lora", "bench", "cache", "node")) {
            TestSupport.Result viaHelp = TestSupport.cli("help", cmd);
            assertEquals(0, viaHelp.exitCode(), cmd + ": " + viaHelp.stderr());
            assertTrue(viaHelp.stdout().contains("Usage: merge-engine " + cmd), cmd + ": " + viaHelp.stdout());
            TestSupport.Result direct = TestSupport.cli(cmd, "--help");
            assertEquals(viaHelp.stdout(), direct.stdout(), cmd);
        }
        TestSupport.Result typo = TestSupport.cli("moe", "--no-such-option");
        assertEquals(2, typo.exitCode());
        assertTrue(typo.stderr().contains("merge-engine moe --help lists the options"), typo.stderr());
    }

    @Test
    void unknownCommandsAndMergekitToolsNotBuiltHereAreNamedAsSuch() {
        for (String[] args : new String[][] {{"tokensurgeon", "model", "donor", "out", "--k", "64"}, {"evolve", "genome.yml"}, {"mergekit-evolve"},
                {"frobnicate"}}) {
            TestSupport.Result r = TestSupport.cli(args);
            assertEquals(2, r.exitCode(), r.stderr());
            assertTrue(r.stderr().startsWith("error: unknown command '" + args[0] + "'"), r.stderr());
            assertTrue(r.stderr().contains("  multi ") && r.stderr().contains("  extract-lora "), "the list of commands: " + r.stderr());
            assertFalse(r.stderr().contains("cannot read") || r.stderr().contains("Unknown option"), r.stderr());
        }
        assertTrue(TestSupport.cli("evolve").stderr().contains("mergekit-evolve is not built into merge-engine"));
        TestSupport.Result missing = TestSupport.cli("missing.yaml", "out");
        assertEquals(2, missing.exitCode());
        assertFalse(missing.stderr().contains("unknown command"), "a config path is still read as a config: " + missing.stderr());
    }
}
