package org.mergeengine.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.multi.MultiConfig;

/** YAML as PyYAML's safe_load reads it (aliases, merge keys), and hostile YAML refused quickly with a clear error. */
class YamlSafetyTest {
    @TempDir
    Path dir;

    static double scalar(MergeConfig.Params p, String name) {
        return ((ParamValue.Scalar) p.get(name)).value();
    }

    @Test
    void aliasesStandForTheirAnchorsValue() {
        MergeConfig c = ConfigParser.parse(String.join("\n",
                "merge_method: ties",
                "models:",
                "  - model: &b org/base",
                "  - model: org/ft",
                "    parameters: &p {weight: 0.5, density: 0.25}",
                "  - model: org/ft2",
                "    parameters: *p",
                "base_model: *b", ""));
        assertEquals("org/base", c.baseModel().path());
        assertEquals(0.5, scalar(c.models().get(2).parameters(), "weight"));
        assertEquals(0.25, scalar(c.models().get(2).parameters(), "density"));
    }

    @Test
    void mergeKeysMergeAMappingAndOwnKeysWin() {
        MergeConfig c = ConfigParser.parse(String.join("\n",
                "merge_method: ties",
                "base_model: org/base",
                "models:",
                "  - model: org/ft",
                "    parameters: &p {weight: 0.5, density: 0.25}",
                "  - model: org/ft2",
                "    parameters:",
                "      <<: *p",
                "      weight: 0.75", ""));
        assertEquals(0.75, scalar(c.models().get(1).parameters(), "weight"));
        assertEquals(0.25, scalar(c.models().get(1).parameters(), "density"));
    }

    @Test
    void anAliasWithoutAnAnchorIsAnError() {
        String msg = assertThrows(ConfigException.class, () -> ConfigParser.parse("merge_method: linear\nmodels: [a]\nbase_model: *nowhere\n")).getMessage();
        assertTrue(msg.contains("*nowhere") && msg.contains("line 3"), msg);
    }

    static String aliasBomb(int levels) {
        StringBuilder sb = new StringBuilder("merge_method: linear\nmodels: [a]\nx0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (int i = 1; i <= levels; i++) {
            sb.append("x").append(i).append(": &x").append(i).append(" [");
            for (int k = 0; k < 9; k++) sb.append(k == 0 ? "" : ", ").append("*x").append(i - 1);
            sb.append("]\n");
        }
        return sb.toString();
    }

    @Test
    void anAliasBombIsRefused() {
        String msg = assertThrows(ConfigException.class, () -> ConfigParser.parse(aliasBomb(9))).getMessage();
        assertTrue(msg.contains("aliases expand to more than " + YamlDocuments.MAX_ALIAS_NODES), msg);
    }

    @Test
    void aTwelveMegabyteCommentLineIsRefusedNamingTheLine() {
        String text = "merge_method: linear\n# " + "x".repeat(12 << 20) + "\nmodels: [a]\n";
        String msg = assertThrows(ConfigException.class, () -> ConfigParser.parse(text)).getMessage();
        assertTrue(msg.contains("line 2 is " + (12 * (1 << 20) + 2) + " characters long"), msg);
    }

    @Test
    void aConfigOverSixteenMegabytesIsRefused() throws Exception {
        String text = "merge_method: linear\nmodels: [a]\n" + "# padding\n".repeat((17 << 20) / 10);
        String msg = assertThrows(ConfigException.class, () -> ConfigParser.parse(text)).getMessage();
        assertTrue(msg.contains("over 16 MiB are refused"), msg);
        Path f = Files.writeString(dir.resolve("big.yaml"), text);
        msg = assertThrows(ConfigException.class, () -> ConfigParser.parseFile(f)).getMessage();
        assertTrue(msg.contains("over 16 MiB are refused"), msg);
    }

    @Test
    void aFewMegabytesOfCommentLinesStillParse() {
        // within the limits: many ordinary lines are read, and no alias or size rule gets in the way
        String text = "merge_method: linear\n" + "# a comment line of ordinary length\n".repeat(100_000) + "models: [a]\n";
        assertEquals("linear", ConfigParser.parse(text).mergeMethod());
    }

    @Test
    void multiStageFilesResolveAliasesWithinEachDocument() {
        String text = String.join("\n",
                "name: first",
                "merge_method: linear",
                "models:",
                "  - model: &m org/a",
                "    parameters: {weight: 1}",
                "  - model: org/b",
                "    parameters: {weight: 1}",
                "base_model: *m",
                "---",
                "merge_method: linear",
                "models: [first, org/c]", "");
        MultiConfig m = MultiConfig.parse(text, dir.resolve("stages"), dir.resolve("out"));
        MergeConfig first = m.stages().stream().filter(s -> "first".equals(s.name())).findFirst().orElseThrow().config();
        assertEquals("org/a", first.baseModel().path());
        String msg = assertThrows(ConfigException.class, () -> MultiConfig.parse(text.replace("models: [first, org/c]", "models: [first, *m]"),
                dir.resolve("stages"), dir.resolve("out"))).getMessage();
        assertTrue(msg.contains("*m"), msg); // anchors do not reach into the next document, as in PyYAML
    }

    @Test
    void duplicateKeysAreStillRefused() {
        String msg = assertThrows(ConfigException.class, () -> ConfigParser.parse("merge_method: linear\nmerge_method: ties\nmodels: [a]\n")).getMessage();
        assertTrue(msg.contains("merge_method"), msg);
    }
}
