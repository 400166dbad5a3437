package org.mergeengine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.stream.Stream;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The jar's entry point (cli.Launch): a plain {@code java -jar} start hands its run over to the
 * launcher script inside the jar, so that it maps the class-data archive too, and runs the engine
 * itself whenever the start is unusual. The end-to-end cases run a jar made of the real
 * {@link Launch} and script with a stand-in {@code Main} that reports how it was started.
 */
class LaunchTest {
    @TempDir
    static Path dir;
    static Path jar;

    /** The stand-in Main, compiled into the test jar under the real one's name. */
    static final String STAND_IN = """
            package org.mergeengine.cli;
            public final class Main {
                public static void main(String[] args) throws Exception {
                    java.nio.file.Path here = java.nio.file.Path.of(System.getProperty("user.dir"));
                    if (args.length == 1 && args[0].equals("warm-up")) {
                        if (java.nio.file.Files.exists(here.resolve("slow-warm-up"))) {
                            java.nio.file.Files.writeString(here.resolve("warming.tmp"), Long.toString(ProcessHandle.current().pid()));
                            java.nio.file.Files.move(here.resolve("warming.tmp"), here.resolve("warming"));
                            Thread.sleep(60_000);
                        }
                        return;
                    }
                    if (args.length == 1 && args[0].equals("wait")) {
                        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                            try {
                                Thread.sleep(300); // a shut-down that takes a while, as a merge's does
                                java.nio.file.Files.writeString(here.resolve("stopped"), "yes");
                            } catch (Exception e) {
                                throw new RuntimeException(e);
                            }
                        }));
                        java.nio.file.Files.writeString(here.resolve("started.tmp"), Long.toString(ProcessHandle.current().pid()));
                        java.nio.file.Files.move(here.resolve("started.tmp"), here.resolve("started"));
                        Thread.sleep(60_000);
                        return;
                    }
                    System.out.println("args=" + String.join("|", args));
                    System.out.println("launched=" + System.getenv("MERGE_ENGINE_LAUNCHED"));
                    System.out.println("pid=" + ProcessHandle.current().pid());
                    for (String o : java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()) System.out.println("jvm=" + o);
                    System.exit(args.length > 0 && args[0].matches("\\\\d+") ? Integer.parseInt(args[0]) : 0);
                }
            }
            """;

    @BeforeAll
    static void standInJar() throws IOException {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        Assumptions.assumeTrue(javac != null, "tests run on a JDK");
        Path src = dir.resolve("src/org/mergeengine/cli/Main.java"), classes = dir.resolve("classes");
        Files.createDirectories(src.getParent());
        Files.createDirectories(classes);
        Files.writeString(src, STAND_IN);
        assertEquals(0, javac.run(null, null, null, "--release", "17", "-d", classes.toString(), src.toString()));

        jar = dir.resolve("stand in/merge-engine.jar"); // a space in the path, as users' folders have
        Files.createDirectories(jar.getParent());
        Manifest m = new Manifest();
        m.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        m.getMainAttributes().put(Attributes.Name.MAIN_CLASS, Launch.class.getName());
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar), m)) {
            add(out, "org/mergeengine/cli/Main.class", Files.newInputStream(classes.resolve("org/mergeengine/cli/Main.class")));
            for (String c : List.of("Launch", "Launch$HandOver", "Launch$Forward")) {
                add(out, "org/mergeengine/cli/" + c + ".class", Launch.class.getResourceAsStream(c + ".class"));
            }
            add(out, "org/mergeengine/cli/" + Launch.SCRIPT, Launch.class.getResourceAsStream(Launch.SCRIPT));
        }
    }

    private static void add(JarOutputStream out, String name, InputStream in) throws IOException {
        assertNotNull(in, name);
        try (in) {
            out.putNextEntry(new JarEntry(name));
            in.transferTo(out);
            out.closeEntry();
        }
    }

    record Run(int exit, List<String> stdout, String stderr) {
        String value(String key) {
            return stdout.stream().filter(l -> l.startsWith(key + "=")).map(l -> l.substring(key.length() + 1)).findFirst().orElse(null);
        }

        List<String> jvm() {
            return stdout.stream().filter(l -> l.startsWith("jvm=")).map(l -> l.substring(4)).toList();
        }
    }

    static ProcessBuilder javaJar(Path work, Map<String, String> env, List<String> jvmOptions, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java")));
        cmd.addAll(jvmOptions);
        cmd.addAll(List.of("-jar", jar.toString()));
        cmd.addAll(List.of(args));
        Files.createDirectories(work);
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(work.toFile());
        for (String v : List.of("JAVA_OPTS", "JDK_JAVA_OPTIONS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "MERGE_ENGINE_CDS", Launch.LAUNCHED)) pb.environment().remove(v);
        pb.environment().putAll(env);
        return pb;
    }

    static Run run(Path work, Map<String, String> env, List<String> jvmOptions, String... args) throws Exception {
        Path out = work.resolve("stdout"), err = work.resolve("stderr");
        Process p = javaJar(work, env, jvmOptions, args).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        int rc = p.waitFor();
        List<String> lines = Files.readAllLines(out);
        String pid = lines.stream().filter(l -> l.startsWith("pid=")).findFirst().orElse("pid=-1").substring(4);
        // The run that printed is the JVM started as `java -jar` only when nothing was handed over.
        lines = new ArrayList<>(lines);
        lines.add("same-process=" + (Long.parseLong(pid) == p.pid()));
        return new Run(rc, lines, Files.readString(err).trim());
    }

    static List<String> files(Path folder) throws IOException {
        if (!Files.isDirectory(folder)) return List.of();
        try (Stream<Path> s = Files.list(folder)) {
            return s.map(f -> f.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void aPlainJavaJarStartRunsThroughTheLauncherScriptWithItsArchiveAndPassesEverythingThrough() throws Exception {
        Path work = dir.resolve("w1"), cds = dir.resolve("cds one");
        Map<String, String> env = Map.of("MERGE_ENGINE_CDS_DIR", cds.toString());
        Run first = run(work, env, List.of("-Xmx200m"), "3", "a b", "--quiet");
        assertEquals(3, first.exit(), first.stderr());
        assertEquals("3|a b|--quiet", first.value("args"));
        assertEquals("1", first.value("launched"), "the engine ran under the launcher script");
        assertEquals("false", first.value("same-process"));
        assertEquals("", first.stderr());
        assertEquals(1, files(cds).size(), "the first run made the archive: " + files(cds));
        List<String> jvm = first.jvm();
        assertTrue(jvm.contains("-Xmx200m"), "the JVM's own options are kept: " + jvm);
        assertTrue(jvm.stream().anyMatch(o -> o.startsWith("-XX:SharedArchiveFile=") || o.startsWith("-XX:AOTCache=")), jvm.toString());
        assertTrue(jvm.containsAll(org.mergeengine.bench.Bench.JIT_OPTIONS), "the launcher's compiler thresholds: " + jvm);

        Run second = run(work, env, List.of("-Xmx200m"), "0");
        assertEquals(0, second.exit(), second.stderr());
        assertEquals(1, files(cds).size(), "the archive is made once");
    }

    @Test
    void unusualStartsRunTheEngineInTheSameJvm() throws Exception {
        Path cds = dir.resolve("cds two");
        List<Map<String, String>> envs = List.of(
                Map.of("MERGE_ENGINE_CDS", "0"),
                Map.of("JDK_JAVA_OPTIONS", "-Xss2m"),
                Map.of("JAVA_TOOL_OPTIONS", "-Xss2m"));
        int i = 0;
        for (Map<String, String> e : envs) {
            Map<String, String> env = new HashMap<>(e);
            env.put("MERGE_ENGINE_CDS_DIR", cds.toString());
            Run r = run(dir.resolve("w2-" + i++), env, List.of(), "5", "x");
            assertEquals(5, r.exit(), e + ": " + r.stderr());
            assertEquals("5|x", r.value("args"));
            assertEquals("true", r.value("same-process"), e.toString());
            assertEquals("null", r.value("launched"));
        }
        Path work = dir.resolve("w2-agent");
        Run withArchiveOption = run(work, Map.of("MERGE_ENGINE_CDS_DIR", cds.toString()), List.of("-Xshare:auto"), "0");
        assertEquals("true", withArchiveOption.value("same-process"));
        assertEquals(List.of(), files(cds), "no archive was made for any of them");
    }

    /** The pid the stand-in writes to {@code file} once it runs (the file appears whole: written aside, then moved). */
    static long pidIn(Path file, Process p, Path work) throws Exception {
        Instant deadline = Instant.now().plus(Duration.ofSeconds(120));
        while (!Files.exists(file) && p.isAlive() && Instant.now().isBefore(deadline)) Thread.sleep(50);
        assertTrue(Files.exists(file), file.getFileName() + " never appeared: " + Files.readString(work.resolve("log")));
        return Long.parseLong(Files.readString(file).trim());
    }

    @Test
    void stoppingTheJavaJarProcessStopsTheEngineAndWaitsForItsShutDown() throws Exception {
        Path work = dir.resolve("w3"), cds = dir.resolve("cds three");
        Process p = javaJar(work, Map.of("MERGE_ENGINE_CDS_DIR", cds.toString()), List.of(), "wait")
                .redirectErrorStream(true).redirectOutput(work.resolve("log").toFile()).start();
        long engine = pidIn(work.resolve("started"), p, work);
        assertTrue(engine != p.pid(), "handed over to another process");
        p.destroy(); // SIGTERM to the `java -jar` process only, as `kill PID` sends
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        assertTrue(Files.exists(work.resolve("stopped")), "the engine ran its shut-down before the java -jar process ended");
        Optional<ProcessHandle> left = ProcessHandle.of(engine);
        assertFalse(left.isPresent() && left.get().isAlive(), "no engine left running");
    }

    @Test
    void stoppingAFirstRunDuringItsWarmUpStopsTheWarmUpToo() throws Exception {
        Path work = Files.createDirectories(dir.resolve("w4")), cds = dir.resolve("cds four");
        Files.writeString(work.resolve("slow-warm-up"), "");
        Process p = javaJar(work, Map.of("MERGE_ENGINE_CDS_DIR", cds.toString()), List.of(), "0")
                .redirectErrorStream(true).redirectOutput(work.resolve("log").toFile()).start();
        long warmUp = pidIn(work.resolve("warming"), p, work);
        p.destroy();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        Optional<ProcessHandle> left = ProcessHandle.of(warmUp);
        assertFalse(left.isPresent() && left.get().isAlive(), "the warm-up JVM did not go on alone");
    }

    @Test
    void onlyTheJvmsOptionsBeforeThisJarAreTakenAndOnlyWhenNothingMustBeLeftAlone() throws Exception {
        Path j = jar;
        assertEquals(List.of("-Xmx2g", "-Dx=1"), Launch.jvmOptions(new String[] {"-Xmx2g", "-Dx=1", "-jar", j.toString(), "cfg.yaml"}, j));
        assertEquals(List.of(), Launch.jvmOptions(new String[] {"-jar", j.toString()}, j));
        assertNull(Launch.jvmOptions(new String[] {"-jar", dir.resolve("other.jar").toString()}, j), "another jar");
        assertNull(Launch.jvmOptions(new String[] {"-cp", j.toString(), "org.mergeengine.cli.Launch"}, j), "not started with -jar");
        for (String o : List.of("-agentlib:jdwp=transport=dt_socket", "-javaagent:a.jar", "-XX:SharedArchiveFile=a.jsa", "-XX:AOTCache=a.aot",
                "-XX:ArchiveClassesAtExit=a.jsa", "-Xshare:off", "-Dname=a b", "@argfile",
                // would act twice (in the waiting JVM too): a port taken, a second recording, log or pre-touched heap
                "-Dcom.sun.management.jmxremote.port=39123", "-XX:StartFlightRecording=filename=r.jfr", "-Xlog:gc*:file=g.log",
                "-XX:+AlwaysPreTouch", "-showversion", "-verbose:gc", "-XX:+AOTClassLinking", "-XX:-UseSharedSpaces",
                // the script splits JAVA_OPTS at blanks and must not meet a pattern or a quote
                "-Dk=*", "-Dk=a?", "-Dk=[ab]", "-Dk='q'", "-Dk=\"q\"")) {
            assertNull(Launch.jvmOptions(new String[] {o, "-jar", j.toString()}, j), o);
        }
        List<String> plain = List.of("-Xmx40g", "-Xms1g", "-Xss4m", "-Dk=x=y", "-ea", "--add-opens=java.base/java.nio=ALL-UNNAMED",
                "--enable-preview", "--sun-misc-unsafe-memory-access=allow", "-XX:+UseZGC", "-XX:MaxRAMPercentage=50", "-XX:ActiveProcessorCount=2");
        List<String> argv = new ArrayList<>(plain);
        argv.addAll(List.of("-jar", j.toString()));
        assertEquals(plain, Launch.jvmOptions(argv.toArray(new String[0]), j));
    }

    @Test
    void optionsFromTheEnvironmentKeepTheRunInThisJvm() {
        assertTrue(Launch.mayHandOver(Map.of("PATH", "/bin")));
        for (String v : List.of("JDK_JAVA_OPTIONS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS")) assertFalse(Launch.mayHandOver(Map.of(v, "-Xshare:off")), v);
        assertTrue(Launch.mayHandOver(Map.of("_JAVA_OPTIONS", " ")), "blank is none");
        assertFalse(Launch.mayHandOver(Map.of("MERGE_ENGINE_CDS", "0")));
        assertFalse(Launch.mayHandOver(Map.of(Launch.LAUNCHED, "1")));
    }

    @Test
    void theHandOverCommandNamesTheScriptThisJavaAndThisJar() {
        ProcessHandle.Info self = new Info("/opt/jdk/bin/java", new String[] {"-Xmx3g", "-jar", jar.toString(), "c.yaml", "out"});
        Launch.HandOver h = Launch.handOver(Map.of("JAVA_OPTS", "-Xmx1g"), self, jar, new String[] {"c.yaml", "out"});
        assertNotNull(h);
        assertEquals(List.of("/bin/sh", "-c"), h.command().subList(0, 2));
        assertTrue(h.command().get(2).contains("MERGE_ENGINE_LAUNCHED=1"), "the script itself");
        assertEquals(List.of("merge-engine", "c.yaml", "out"), h.command().subList(3, h.command().size()));
        assertEquals(Map.of("JAVA", "/opt/jdk/bin/java", "JAVA_OPTS", "-Xmx3g", "MERGE_ENGINE_JAR", jar.toString()), h.env(),
                "this JVM's options replace the user's JAVA_OPTS, which java -jar ignores");
        assertNull(Launch.handOver(Map.of(Launch.LAUNCHED, "1"), self, jar, new String[0]), "started by the script");
        assertNull(Launch.handOver(Map.of(), self, null, new String[0]), "not from a jar");
        assertNull(Launch.handOver(Map.of(), new Info(null, null), jar, new String[0]), "the command line is unknown");
    }

    /** A process's description as ProcessHandle gives it. */
    record Info(String cmd, String[] args) implements ProcessHandle.Info {
        @Override public Optional<String> command() { return Optional.ofNullable(cmd); }
        @Override public Optional<String> commandLine() { return Optional.empty(); }
        @Override public Optional<String[]> arguments() { return Optional.ofNullable(args); }
        @Override public Optional<Instant> startInstant() { return Optional.empty(); }
        @Override public Optional<Duration> totalCpuDuration() { return Optional.empty(); }
        @Override public Optional<String> user() { return Optional.empty(); }
    }
}
