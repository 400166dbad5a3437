package org.mergeengine.cli;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.classic.spi.Configurator;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.spi.ContextAwareBase;
import java.util.Map;

/**
 * The built-in logging settings, set in code: reading them from XML was a noticeable part of
 * every start. {@code config/logback.xml} states the same settings as XML (a test keeps the two
 * equal). A configuration file given with {@code -Dlogback.configurationFile}, or a
 * {@code logback.xml} or {@code logback-test.xml} of an application that embeds the engine, takes
 * precedence: logback then reads it as usual.
 */
public final class LogSetup extends ContextAwareBase implements Configurator {
    /**
     * Messages for people go to stderr, one line each, with the prefixes the CLI's own messages use
     * ({@code error:}, {@code warning:}); the CLI sets the root level from its verbosity flags.
     */
    static final String PATTERN = "%replace(%replace(%replace(%replace(%level){'ERROR','error:'}){'WARN','warning:'}){'INFO','info:'}){'DEBUG','debug:'} %msg%n";

    static final Map<String, Level> LEVELS = Map.of(
            "org.apache.pekko", Level.WARN,
            // A node that leaves closes its connections; the peers' streams report each as a failure.
            "org.apache.pekko.stream.Materializer", Level.ERROR,
            // DJL probes for CUDA on every start; the cuda option reports a missing GPU itself.
            "ai.djl.util.cuda", Level.ERROR);

    /** The root level before the CLI sets one. */
    static final String LEVEL_PROPERTY = "merge.engine.loglevel";

    @Override
    public ExecutionStatus configure(LoggerContext context) {
        ClassLoader cl = LogSetup.class.getClassLoader();
        if (System.getProperty("logback.configurationFile") != null
                || cl.getResource("logback-test.xml") != null || cl.getResource("logback.xml") != null) {
            return ExecutionStatus.INVOKE_NEXT_IF_ANY;
        }
        PatternLayoutEncoder encoder = new PatternLayoutEncoder();
        encoder.setContext(context);
        encoder.setPattern(PATTERN);
        encoder.start();
        ConsoleAppender<ILoggingEvent> stderr = new ConsoleAppender<>();
        stderr.setContext(context);
        stderr.setName("STDERR");
        stderr.setTarget("System.err");
        stderr.setEncoder(encoder);
        stderr.start();
        LEVELS.forEach((name, level) -> context.getLogger(name).setLevel(level));
        Logger root = context.getLogger(Logger.ROOT_LOGGER_NAME);
        root.setLevel(Level.toLevel(System.getProperty(LEVEL_PROPERTY), Level.WARN));
        root.addAppender(stderr);
        return ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY;
    }
}
