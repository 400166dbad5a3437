package org.mergeengine.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.methods.MethodRegistry;
import org.mergeengine.tools.ExampleModels;

/** The example configs run on the shipped example models, and every method has one. */
class ExamplesTest {
    static final Path EXAMPLES = Path.of("config/examples");

    @TempDir
    Path tmp;

    static List<Path> configs() throws Exception {
        try (Stream<Path> s = Files.list(EXAMPLES)) {
            return s.filter(p -> p.toString().endsWith(".yaml")).sorted().collect(Collectors.toList());
        }
    }

    @TestFactory
    Stream<DynamicTest> everyExampleRuns() throws Exception {
        return configs().stream().map(c -> DynamicTest.dynamicTest(c.getFileName().toString(), () -> {
            boolean moe = c.getFileName().toString().startsWith("moe"); // mergekit-moe configs run with the moe command
            TestSupport.Result r = moe ? TestSupport.cli("moe", c.toString(), tmp.resolve(c.getFileName().toString()).toString(), "--quiet")
                    : TestSupport.cli(c.toString(), tmp.resolve(c.getFileName().toString()).toString(), "--quiet");
            assertEquals(0, r.exitCode(), r.stderr());
            assertTrue(Files.exists(tmp.resolve(c.getFileName().toString()).resolve("model.safetensors")));
        }));
    }

    @Test
    void everyMethodHasAnExample() throws Exception {
        Set<String> have = new TreeSet<>();
        for (Path c : configs()) {
            for (String line : Files.readAllLines(c)) if (line.startsWith("merge_method:")) have.add(line.substring(13).trim());
        }
        assertEquals(new TreeSet<>(MethodRegistry.all().keySet()), have);
    }

    @Test
    void configFolderCopiesAreTheBuiltInDefaults() throws Exception {
        // config/logback.xml against the built-in logging settings (set in code): LogSetupTest.
        String[][] pairs = {{"config/application.conf", "application.conf"}, {"config/cluster.conf", "merge-engine-cluster.conf"}};
        for (String[] p : pairs) {
            try (java.io.InputStream in = getClass().getClassLoader().getResourceAsStream(p[1])) {
                assertArrayEquals(in.readAllBytes(), Files.readAllBytes(Path.of(p[0])), p[0] + " is documented as a copy of the built-in " + p[1]);
            }
        }
        // logback reports a malformed file only on stderr at start, so parse it here.
        javax.xml.parsers.DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(Path.of("config/logback.xml").toFile());
        com.typesafe.config.ConfigFactory.parseFile(Path.of("config/cluster.conf").toFile()).resolve();
    }

    @Test
    void shippedModelsAreWhatTheGeneratorWrites() throws Exception {
        ExampleModels.write(tmp.resolve("models"));
        for (String m : new String[] {"base", "ft1", "ft2"}) {
            for (String f : new String[] {"model.safetensors", "config.json", "tokenizer.json"}) {
                assertArrayEquals(Files.readAllBytes(EXAMPLES.resolve("models").resolve(m).resolve(f)),
                        Files.readAllBytes(tmp.resolve("models").resolve(m).resolve(f)), m + "/" + f);
            }
        }
    }
}
