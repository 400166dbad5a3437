package org.mergeengine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The launcher script (src/main/sh/merge-engine), run against a stand-in jar whose main class
 * records how it was called: the archive is made once by a warm-up, later runs map it, arguments
 * and exit codes pass through, and no archive problem stops a run.
 */
class LauncherTest {
    @TempDir
    static Path dir;
    static Path jar;

    /** The stand-in's main: "warm-up" counts itself in a file; otherwise prints its arguments and exits with the first. */
    public static final class Stand {
        public static void main(String[] args) throws IOException {
            Path log = Path.of(System.getProperty("user.dir"), "calls.txt");
            if (args.length == 1 && args[0].equals("warm-up")) {
                Files.writeString(log, "warm-up\n", StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
                return;
            }
            if (args.length == 1 && args[0].equals("jvm-options")) {
                System.out.println(String.join("\n", java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()));
                return;
            }
            System.out.println(String.join("|", args));
            System.exit(args.length > 0 && args[0].matches("\\d+") ? Integer.parseInt(args[0]) : 0);
        }
    }

    @BeforeAll
    static void standInJar() throws IOException {
        jar = dir.resolve("merge-engine.jar");
        Manifest m = new Manifest();
        m.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        m.getMainAttributes().put(Attributes.Name.MAIN_CLASS, Stand.class.getName());
        String entry = Stand.class.getName().replace('.', '/') + ".class";
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar), m);
             var in = LauncherTest.class.getClassLoader().getResourceAsStream(entry)) {
            out.putNextEntry(new JarEntry(entry));
            in.transferTo(out);
            out.closeEntry();
        }
    }

    record Run(int exit, String stdout, String stderr) {}

    static Run launch(Path work, Map<String, String> env, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("sh", Path.of("src/main/sh/merge-engine").toAbsolutePath().toString()));
        cmd.addAll(List.of(args));
        Files.createDirectories(work);
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(work.toFile());
        pb.environment().put("MERGE_ENGINE_JAR", jar.toString());
        pb.environment().put("JAVA", ProcessHandle.current().info().command().orElse("java"));
        pb.environment().remove("JAVA_OPTS");
        pb.environment().putAll(env);
        Path out = work.resolve("stdout"), err = work.resolve("stderr");
        Process p = pb.redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        int rc = p.waitFor();
        return new Run(rc, Files.readString(out).trim(), Files.readString(err).trim());
    }

    static long archives(Path cds) throws IOException {
        if (!Files.isDirectory(cds)) return 0;
        try (Stream<Path> s = Files.list(cds)) {
            return s.filter(f -> f.toString().endsWith(".jsa") || f.toString().endsWith(".aot")).count();
        }
    }

    static long warmUps(Path work) throws IOException {
        Path log = work.resolve("calls.txt");
        return Files.exists(log) ? Files.readAllLines(log).size() : 0;
    }

    @Test
    void firstRunMakesTheArchiveLaterRunsUseItAndArgumentsAndExitCodesPassThrough() throws Exception {
        Path work = dir.resolve("w1"), cds = dir.resolve("cds one");
        Map<String, String> env = Map.of("MERGE_ENGINE_CDS_DIR", cds.toString());
        Run first = launch(work, env, "3", "a b", "--quiet");
        assertEquals(3, first.exit(), first.stderr());
        assertEquals("3|a b|--quiet", first.stdout());
        assertEquals("", first.stderr(), "nothing on stderr when it is not a terminal");
        assertEquals(1, warmUps(work));
        assertEquals(1, archives(cds));

        Run second = launch(work, Map.of("MERGE_ENGINE_CDS_DIR", cds.toString(), "JAVA_OPTS", "-Xlog:class+load:file=classes.txt"), "0");
        assertEquals(0, second.exit(), second.stderr());
        assertEquals(1, warmUps(work), "the archive is made once");
        String classes = Files.readString(work.resolve("classes.txt"));
        assertTrue(classes.contains(Stand.class.getName() + " source: shared objects file"), "the stand-in's class comes from the archive");
    }

    /**
     * On Java 25 and later the launcher keeps an ahead-of-time cache instead (made in two steps,
     * so that a folder with a space in its name works): checked when such a JDK is installed beside
     * the one running the tests (Debian's /usr/lib/jvm, or MERGE_ENGINE_TEST_JAVA25).
     */
    @Test
    void onJava25TheArchiveIsAnAheadOfTimeCache() throws Exception {
        Path java25 = java25();
        Assumptions.assumeTrue(java25 != null, "no JDK 25 or later installed");
        Path work = dir.resolve("w7"), cds = dir.resolve("cds seven");
        Map<String, String> env = Map.of("JAVA", java25.toString(), "MERGE_ENGINE_CDS_DIR", cds.toString());
        Run first = launch(work, env, "0", "a");
        assertEquals(0, first.exit(), first.stderr());
        assertEquals("0|a", first.stdout());
        assertEquals("", first.stderr());
        try (Stream<Path> s = Files.list(cds)) {
            assertEquals(List.of(".aot"), s.map(f -> f.getFileName().toString().replaceAll("^[0-9]+", "")).toList(),
                    "one cache, and no temporary files left");
        }
        Map<String, String> logged = new java.util.HashMap<>(env);
        logged.put("JAVA_OPTS", "-Xlog:class+load:file=classes.txt");
        Run second = launch(work, logged, "0");
        assertEquals(0, second.exit(), second.stderr());
        assertEquals("", second.stderr());
        assertEquals(1, warmUps(work), "the warm-up ran once, for the recording");
        assertTrue(Files.readString(work.resolve("classes.txt")).contains(Stand.class.getName() + " source: shared objects file"),
                "the stand-in's class comes from the cache");
    }

    /** A JDK of release 25 or later: MERGE_ENGINE_TEST_JAVA25, else the newest under /usr/lib/jvm; null if none. */
    static Path java25() throws IOException {
        String set = System.getenv("MERGE_ENGINE_TEST_JAVA25");
        if (set != null && !set.isEmpty()) return Path.of(set);
        Path jvms = Path.of("/usr/lib/jvm");
        if (!Files.isDirectory(jvms)) return null;
        try (Stream<Path> s = Files.list(jvms)) {
            for (Path home : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Path release = home.resolve("release"), bin = home.resolve("bin/java");
                if (!Files.isRegularFile(release) || !Files.isExecutable(bin)) continue;
                var m = java.util.regex.Pattern.compile("(?m)^JAVA_VERSION=\"(\\d+)").matcher(Files.readString(release));
                if (m.find() && Integer.parseInt(m.group(1)) >= 25) return bin;
            }
        }
        return null;
    }

    @Test
    void aLargeHeapGetsItsOwnArchive() throws Exception {
        Path work = dir.resolve("w2"), cds = dir.resolve("cds2");
        assertEquals(0, launch(work, Map.of("MERGE_ENGINE_CDS_DIR", cds.toString()), "0").exit());
        assertEquals(0, launch(work, Map.of("MERGE_ENGINE_CDS_DIR", cds.toString(), "JAVA_OPTS", "-Xmx40g"), "0").exit());
        assertEquals(2, warmUps(work));
        assertEquals(2, archives(cds));
        // Heaps of one pointer layout share an archive, however they are written.
        assertEquals(0, launch(work, Map.of("MERGE_ENGINE_CDS_DIR", cds.toString(), "JAVA_OPTS", "-Xmx200m"), "0").exit());
        assertEquals(0, launch(work, Map.of("MERGE_ENGINE_CDS_DIR", cds.toString(), "JAVA_OPTS", "-Xmx1g"), "0").exit());
        assertEquals(0, launch(work, Map.of("MERGE_ENGINE_CDS_DIR", cds.toString(), "JAVA_OPTS", "-Xmx2048M"), "0").exit());
        assertEquals(3, warmUps(work), "one more archive for the small heaps");
        assertEquals(0, launch(work, Map.of("MERGE_ENGINE_CDS_DIR", cds.toString(), "JAVA_OPTS", "-Xmx48g"), "0").exit());
        assertEquals(3, warmUps(work), "-Xmx48g maps the -Xmx40g archive");
        assertEquals(3, archives(cds));
    }

    @Test
    void withoutHomeOrACacheFolderTheRunHappensWithoutAnArchive() throws Exception {
        Path work = dir.resolve("w7");
        Map<String, String> env = new java.util.HashMap<>();
        env.put("HOME", "");
        env.put("XDG_CACHE_HOME", "");
        env.put("MERGE_ENGINE_CDS_DIR", "");
        Run r = launch(work, env, "0", "h");
        assertEquals(0, r.exit(), r.stderr());
        assertEquals("0|h", r.stdout());
        assertEquals("", r.stderr());
        assertEquals(0, warmUps(work));
    }

    @Test
    void aStoppedWarmUpsLeftoversAreRemovedByTheNextOne() throws Exception {
        Path work = dir.resolve("w8"), cds = Files.createDirectories(dir.resolve("cds8"));
        // A pid that cannot be running (above the kernel's pid_max), and this test's own (alive).
        Path gone = Files.writeString(cds.resolve("123.jsa.99999999.tmp"), "x");
        Path goneConfig = Files.writeString(cds.resolve("123.aot.99999999.tmp.config"), "x");
        Path alive = Files.writeString(cds.resolve("123.jsa." + ProcessHandle.current().pid() + ".tmp"), "x");
        assertEquals(0, launch(work, Map.of("MERGE_ENGINE_CDS_DIR", cds.toString()), "0").exit());
        assertFalse(Files.exists(gone));
        assertFalse(Files.exists(goneConfig));
        assertTrue(Files.exists(alive), "a warm-up still running keeps its file");
        assertEquals(1, archives(cds));
    }

    @Test
    void withoutAnArchiveTheRunStillHappens() throws Exception {
        Path work = dir.resolve("w3");
        Run off = launch(work, Map.of("MERGE_ENGINE_CDS", "0", "MERGE_ENGINE_CDS_DIR", dir.resolve("cds3").toString()), "0", "x");
        assertEquals(0, off.exit());
        assertEquals("0|x", off.stdout());
        assertEquals(0, warmUps(work));
        assertFalse(Files.exists(dir.resolve("cds3")));

        Path file = Files.writeString(dir.resolve("not-a-folder"), "");
        Run blocked = launch(work, Map.of("MERGE_ENGINE_CDS_DIR", file.resolve("cds").toString()), "0", "y");
        assertEquals(0, blocked.exit(), blocked.stderr());
        assertEquals("0|y", blocked.stdout());
        assertEquals("", blocked.stderr());

        Path broken = dir.resolve("cds4");
        Run first = launch(work, Map.of("MERGE_ENGINE_CDS_DIR", broken.toString()), "0");
        assertEquals(0, first.exit());
        try (Stream<Path> s = Files.list(broken)) {
            for (Path a : s.toList()) {
                a.toFile().setWritable(true);
                try (OutputStream o = Files.newOutputStream(a)) {
                    o.write("not an archive".getBytes(StandardCharsets.UTF_8));
                }
            }
        }
        Run garbled = launch(work, Map.of("MERGE_ENGINE_CDS_DIR", broken.toString()), "0", "z");
        assertEquals(0, garbled.exit(), garbled.stderr());
        assertEquals("0|z", garbled.stdout());
        assertEquals("", garbled.stderr(), "a broken archive is passed over silently");
    }

    @Test
    void theJvmGetsTheBenchsCompilerThresholdsUnglobbedAndJavaOptsComeLast() throws Exception {
        Path work = dir.resolve("w6");
        // A file matching the pattern's glob: unquoted, the shell would pass its name instead.
        Files.createDirectories(work);
        Files.writeString(work.resolve("-XX:CompileCommand=CompileThresholdScaling,org.mergeengine.x::y,1.0"), "");
        Run r = launch(work, Map.of("MERGE_ENGINE_CDS", "0", "JAVA_OPTS", "-XX:CompileThresholdScaling=2"), "jvm-options");
        assertEquals(0, r.exit(), r.stderr());
        List<String> opts = List.of(r.stdout().split("\n"));
        int at = -1;
        for (String o : org.mergeengine.bench.Bench.JIT_OPTIONS) {
            int i = opts.indexOf(o);
            assertTrue(i > at, o + " missing or out of order in " + opts);
            at = i;
        }
        assertTrue(opts.indexOf("-XX:CompileThresholdScaling=2") > at, "the user's JAVA_OPTS come after the launcher's, so they win: " + opts);
    }

    @Test
    void aMissingJarSaysHowToBuildIt() throws Exception {
        Path work = dir.resolve("w5");
        Run r = launch(work, Map.of("MERGE_ENGINE_JAR", dir.resolve("nope.jar").toString(), "MERGE_ENGINE_CDS", "0"), "cfg.yaml");
        assertEquals(2, r.exit());
        assertTrue(r.stderr().contains("mvn -q -DskipTests package"), r.stderr());
    }
}
