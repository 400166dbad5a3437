package org.mergeengine.plan;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The output config.json of every family: the donor's text, byte for byte, where the merge changes nothing. */
class FamilyConfigTest {
    @TempDir
    static Path dir;

    @BeforeAll
    static void models() throws Exception {
        for (String f : Families.ALL) {
            Families.write(dir.resolve(f).resolve("a"), f, 1);
            Families.write(dir.resolve(f).resolve("b"), f, 2);
        }
    }

    static java.util.List<String> families() {
        return Families.ALL;
    }

    static String configOf(MergePlan plan) {
        return new String(plan.files().files("out", false, false).get("config.json"), StandardCharsets.UTF_8);
    }

    @ParameterizedTest
    @MethodSource("families")
    void aLinearMergeWritesTheDonorsConfigUnchanged(String family) throws Exception {
        MergePlan plan = Families.plan(dir, "merge_method: linear\nmodels:\n  - model: " + family + "/a\n    parameters: {weight: 0.5}\n"
                + "  - model: " + family + "/b\n    parameters: {weight: 0.5}\n");
        assertEquals(new String(Families.resource(family, "config.json"), StandardCharsets.UTF_8), configOf(plan));
    }
}
