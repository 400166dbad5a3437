package org.mergeengine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.mergeengine.TestSupport;

/** Every command's --help renders cleanly: picocli reports a bad description on System.err, beside the help. */
class HelpTest {
    @Test
    void everyCommandsHelpRendersWithoutWarnings() {
        PrintStream saved = System.err;
        ByteArrayOutputStream direct = new ByteArrayOutputStream();
        try {
            System.setErr(new PrintStream(direct, true, StandardCharsets.UTF_8));
            for (String cmd : new String[] {"", "extract-lora", "bench", "cache", "multi", "node"}) {
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
}
