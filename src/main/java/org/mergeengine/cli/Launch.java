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
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The jar's entry point. Started as {@code java -jar merge-engine.jar ...}, it hands the run to the
 * launcher script that the build also puts beside the jar (it travels inside the jar), so that a
 * plain {@code java -jar} start maps the same class-data archive as {@code target/merge-engine}:
 * the example merge took 1.5 to 1.8 s that way against 0.7 to 0.9 s through the launcher, and the
 * hand-over costs about 0.05 s (this class, a shell, and the JVM that stays to wait). Anything
 * unusual about the start runs the engine in this JVM instead, as before: a JVM option outside the
 * short list of {@link #handedOver}, options in {@code JDK_JAVA_OPTIONS}, {@code JAVA_TOOL_OPTIONS}
 * or {@code _JAVA_OPTIONS} (the launcher's warm-up would get them too), no {@code /bin/sh}, or
 * {@code MERGE_ENGINE_CDS=0}.
 * Kept free of lambdas and of the engine's classes: every microsecond here is added to the start.
 */
public final class Launch {
    /** Set by the launcher script (and the bench) for the JVMs it starts: they run the engine themselves. */
    static final String LAUNCHED = "MERGE_ENGINE_LAUNCHED";
    static final String SCRIPT = "merge-engine.sh";

    private Launch() {}

    public static void main(String[] args) {
        // The launcher's own JVMs (every launcher start) skip the command-line and jar lookups.
        HandOver h = mayHandOver(System.getenv()) ? handOver(System.getenv(), ProcessHandle.current().info(), jarPath(), args) : null;
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
        if (!mayHandOver(env)) return null;
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
     * Not when the launcher started this JVM, when archives are turned off, or when the environment
     * adds options to every JVM (the launcher's warm-up and the waiting JVM would get them too).
     */
    static boolean mayHandOver(Map<String, String> env) {
        if ("0".equals(env.get("MERGE_ENGINE_CDS")) || env.containsKey(LAUNCHED)) return false;
        return blank(env.get("JDK_JAVA_OPTIONS")) && blank(env.get("JAVA_TOOL_OPTIONS")) && blank(env.get("_JAVA_OPTIONS"));
    }

    /**
     * The JVM options before {@code -jar JAR}, when the process was started as {@code java [options]
     * -jar JAR} with this jar and with only options that are {@linkplain #handedOver handed over}; else null.
     */
    static List<String> jvmOptions(String[] argv, Path jar) {
        List<String> opts = new ArrayList<>();
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if (a.equals("-jar")) {
                if (i + 1 >= argv.length || !sameFile(Path.of(argv[i + 1]), jar)) return null;
                return opts;
            }
            if (!handedOver(a)) return null;
            opts.add(a);
        }
        return null;
    }

    /**
     * Options known to mean the same in the JVM that waits and in the engine's, and to cost the
     * waiting one nothing: heap and stack sizes, the collector and its sizing, properties, module
     * access, assertions. Anything else (an agent, a debugger, JMX or flight recording, a log file,
     * pre-touched memory, an archive option) keeps the run in this one JVM, as before. Words are
     * joined into JAVA_OPTS and split again by the script: no blanks, quotes or glob characters.
     */
    static boolean handedOver(String option) {
        for (int i = 0; i < option.length(); i++) {
            char c = option.charAt(i);
            if (Character.isWhitespace(c) || c == '*' || c == '?' || c == '[' || c == '\\' || c == '\'' || c == '"') return false;
        }
        for (String p : NOT_HANDED_OVER) if (option.startsWith(p)) return false;
        for (String p : HANDED_OVER) if (option.startsWith(p)) return true;
        return false;
    }

    private static final String[] HANDED_OVER = {
        "-Xmx", "-Xms", "-Xss", "-Xmn", "-D", "-ea", "-da", "-esa", "-dsa", "-enableassertions", "-disableassertions",
        "--add-opens=", "--add-exports=", "--add-reads=", "--add-modules=", "--enable-preview", "--enable-native-access=",
        "--sun-misc-unsafe-memory-access=", "--illegal-native-access=",
        "-XX:+Use", "-XX:-Use", "-XX:MaxRAM", "-XX:InitialRAM", "-XX:MinRAM", "-XX:MaxHeapSize=", "-XX:InitialHeapSize=",
        "-XX:MaxDirectMemorySize=", "-XX:MaxMetaspaceSize=", "-XX:ActiveProcessorCount=", "-XX:ParallelGCThreads=",
        "-XX:ConcGCThreads=", "-XX:MaxGCPauseMillis=", "-XX:+UnlockExperimentalVMOptions",
    };

    /** Within the prefixes above: what the JVM that waits must not do too, and archive choices that are the user's. */
    private static final String[] NOT_HANDED_OVER = {
        "-Dcom.sun.management.", "-Djava.security.manager", "-Djdk.attach", "-XX:+UseSharedSpaces", "-XX:-UseSharedSpaces",
        "-XX:+UseLargePages", "-XX:+UseTransparentHugePages",
    };

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
            // The script's own children too: a first run's warm-up JVM is the shell's child, not
            // replaced by it, and would otherwise go on alone.
            List<ProcessHandle> below = p.descendants().toList();
            p.destroy();
            for (ProcessHandle d : below) d.destroy();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            try {
                p.waitFor(60, TimeUnit.SECONDS);
                for (ProcessHandle d : below) {
                    long left = deadline - System.nanoTime();
                    if (left > 0) d.onExit().get(left, TimeUnit.NANOSECONDS);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (ExecutionException | TimeoutException e) {
                // stopping; nothing more to wait for
            }
        }
    }
}
