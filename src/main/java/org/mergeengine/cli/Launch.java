package org.mergeengine.cli;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * The jar's entry point. Started as {@code java -jar merge-engine.jar ...}, it hands the run to the
 * launcher script that the build also puts beside the jar (it travels inside the jar), so that a
 * plain {@code java -jar} start maps the same class-data archive as {@code target/merge-engine}:
 * the example merge took 1.5 to 1.8 s that way against 0.7 to 0.9 s through the launcher, and the
 * hand-over costs about 0.05 s (this class, a shell, and the JVM that stays to wait). Anything
 * unusual about the start runs the engine in this JVM instead, as before: an agent or an archive
 * option among the JVM's options, options in {@code JDK_JAVA_OPTIONS} or {@code JAVA_TOOL_OPTIONS}
 * (the launcher's warm-up would get them too), no {@code /bin/sh}, or {@code MERGE_ENGINE_CDS=0}.
 * Kept free of lambdas and of the engine's classes: every microsecond here is added to the start.
 */
public final class Launch {
    /** Set by the launcher script (and the bench) for the JVMs it starts: they run the engine themselves. */
    static final String LAUNCHED = "MERGE_ENGINE_LAUNCHED";
    static final String SCRIPT = "merge-engine.sh";

    private Launch() {}

    public static void main(String[] args) {
        HandOver h = handOver(System.getenv(), ProcessHandle.current().info(), jarPath(), args);
        if (h != null) {
            Integer rc = run(h);
            if (rc != null) System.exit(rc);
        }
        Main.main(args);
    }

    /** The launcher script's command ({@code /bin/sh -c SCRIPT merge-engine ARGS...}) and what it adds to the environment. */
    record HandOver(Map<String, String> env, List<String> command) {}

    /**
     * How to run {@code args} through the launcher script, with this JVM's binary and options as its
     * {@code JAVA} and {@code JAVA_OPTS} (which {@code java -jar} itself ignores: the user's are
     * replaced), or null when this JVM should run the engine itself.
     */
    static HandOver handOver(Map<String, String> env, ProcessHandle.Info self, Path jar, String[] args) {
        if ("0".equals(env.get("MERGE_ENGINE_CDS")) || env.containsKey(LAUNCHED)) return null;
        if (!blank(env.get("JDK_JAVA_OPTIONS")) || !blank(env.get("JAVA_TOOL_OPTIONS"))) return null;
        if (jar == null || !new File("/bin/sh").canExecute()) return null;
        Optional<String> java = self.command();
        Optional<String[]> argv = self.arguments();
        if (java.isEmpty() || argv.isEmpty()) return null;
        List<String> jvm = jvmOptions(argv.get(), jar);
        if (jvm == null) return null;
        String script = script();
        if (script == null) return null;
        List<String> cmd = new ArrayList<>();
        cmd.add("/bin/sh");
        cmd.add("-c");
        cmd.add(script);
        cmd.add("merge-engine");
        for (String a : args) cmd.add(a);
        return new HandOver(Map.of("JAVA", java.get(), "JAVA_OPTS", String.join(" ", jvm), "MERGE_ENGINE_JAR", jar.toString()), cmd);
    }

    /**
     * The JVM options before {@code -jar JAR}, when the process was started as {@code java [options]
     * -jar JAR} with this jar and with none of the options the hand-over must leave alone; else null.
     */
    static List<String> jvmOptions(String[] argv, Path jar) {
        List<String> opts = new ArrayList<>();
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if (a.equals("-jar")) {
                if (i + 1 >= argv.length || !sameFile(Path.of(argv[i + 1]), jar)) return null;
                return opts;
            }
            if (!a.startsWith("-") || a.indexOf(' ') >= 0 || a.indexOf('\t') >= 0 || a.indexOf('\n') >= 0) return null;
            // Options that take their value as the next word (-cp X) never come with -jar; any would be read as the class.
            if (a.equals("-cp") || a.equals("-classpath") || a.equals("--class-path") || a.equals("-m") || a.equals("--module")) return null;
            if (leftAlone(a)) return null;
            opts.add(a);
        }
        return null;
    }

    private static final String[] LEFT_ALONE = {
        "-agentlib:", "-agentpath:", "-javaagent:", "-Xdebug", "-Xrunjdwp", "-Xshare:", "-XX:SharedArchiveFile",
        "-XX:ArchiveClassesAtExit", "-XX:+AutoCreateSharedArchive", "-XX:AOT", "-XX:SharedClassListFile",
        "-XX:DumpLoadedClassList", "-XX:+RecordDynamicDumpInfo", "-XX:Flags=", "-XX:VMOptionsFile=", "@",
    };

    /** A debugger or agent would also attach to the launcher's warm-up; an archive option is the user's own choice. */
    private static boolean leftAlone(String option) {
        for (String p : LEFT_ALONE) if (option.startsWith(p)) return true;
        return false;
    }

    private static boolean sameFile(Path a, Path b) {
        try {
            return Files.isSameFile(a, b);
        } catch (IOException | SecurityException e) {
            return false;
        }
    }

    private static boolean blank(String s) {
        return s == null || s.isBlank();
    }

    /** The jar this class was loaded from, or null (classes from a folder: tests, an IDE). */
    static Path jarPath() {
        try {
            var src = Launch.class.getProtectionDomain().getCodeSource();
            if (src == null) return null;
            Path p = Path.of(src.getLocation().toURI());
            return Files.isRegularFile(p) && p.toString().endsWith(".jar") ? p.toAbsolutePath() : null;
        } catch (URISyntaxException | RuntimeException e) {
            return null;
        }
    }

    static String script() {
        try (InputStream in = Launch.class.getResourceAsStream(SCRIPT)) {
            return in == null ? null : new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return null;
        }
    }

    /**
     * Runs the hand-over's command with this process's standard streams and returns its exit code,
     * or null when it could not start (the caller then runs the engine itself). A signal that ends
     * this JVM (Ctrl-C reaches both; a plain kill reaches only this one) is passed on, and this JVM
     * waits for the engine to finish its own shut-down, so that a crash-safe stop stays one.
     */
    static Integer run(HandOver h) {
        ProcessBuilder pb = new ProcessBuilder(h.command()).inheritIO();
        pb.environment().putAll(h.env());
        final Process p;
        try {
            p = pb.start();
        } catch (IOException | RuntimeException e) {
            return null;
        }
        Thread hook = new Thread(new Forward(p), "merge-engine-stop");
        Runtime.getRuntime().addShutdownHook(hook);
        while (true) {
            try {
                return p.waitFor();
            } catch (InterruptedException e) {
                // Nothing interrupts main here but a shut-down, which the hook handles; keep waiting.
            }
        }
    }

    /** Passes this JVM's shut-down on to the engine's process and waits for it (bounded). */
    private static final class Forward implements Runnable {
        private final Process p;

        Forward(Process p) {
            this.p = p;
        }

        @Override
        public void run() {
            if (!p.isAlive()) return;
            p.destroy();
            try {
                p.waitFor(60, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
