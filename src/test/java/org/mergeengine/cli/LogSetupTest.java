package org.mergeengine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.classic.joran.JoranConfigurator;
import ch.qos.logback.classic.spi.Configurator;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.spi.LoggingEvent;
import ch.qos.logback.core.Appender;
import ch.qos.logback.core.ConsoleAppender;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;

/** The built-in logging settings are set in code; config/logback.xml is documented as the same settings in XML. */
class LogSetupTest {
    /** What a configured context does: every explicitly set level, and the root's appenders as target and pattern. */
    static Map<String, String> describe(LoggerContext c) {
        Map<String, String> d = new TreeMap<>();
        for (ch.qos.logback.classic.Logger l : c.getLoggerList()) {
            if (l.getLevel() != null) d.put(l.getName(), l.getLevel().toString());
        }
        List<String> appenders = new ArrayList<>();
        for (var it = c.getLogger(Logger.ROOT_LOGGER_NAME).iteratorForAppenders(); it.hasNext(); ) {
            Appender<ILoggingEvent> a = it.next();
            ConsoleAppender<ILoggingEvent> ca = (ConsoleAppender<ILoggingEvent>) a;
            appenders.add(a.getName() + " " + ca.getTarget() + " " + ((PatternLayoutEncoder) ca.getEncoder()).getPattern() + " started=" + a.isStarted());
        }
        d.put("root appenders", appenders.toString());
        return d;
    }

    @Test
    void theExampleXmlConfiguresWhatTheCodeDoes() throws Exception {
        LoggerContext fromXml = new LoggerContext();
        JoranConfigurator j = new JoranConfigurator();
        j.setContext(fromXml);
        j.doConfigure(Path.of("config/logback.xml").toFile());
        LoggerContext fromCode = new LoggerContext();
        LogSetup setup = new LogSetup();
        setup.setContext(fromCode);
        assertEquals(Configurator.ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY, setup.configure(fromCode));
        Map<String, String> want = describe(fromXml);
        assertEquals(want, describe(fromCode));
        assertEquals("WARN", want.get(Logger.ROOT_LOGGER_NAME));
        assertTrue(want.get("root appenders").contains("STDERR System.err " + LogSetup.PATTERN + " started=true"), want.toString());
        assertEquals(Level.ERROR.toString(), want.get("org.apache.pekko.stream.Materializer"));
    }

    @Test
    void logLinesCarryTheCliPrefixes() {
        LoggerContext c = new LoggerContext();
        LogSetup setup = new LogSetup();
        setup.setContext(c);
        setup.configure(c);
        ConsoleAppender<ILoggingEvent> a = (ConsoleAppender<ILoggingEvent>) c.getLogger(Logger.ROOT_LOGGER_NAME).getAppender("STDERR");
        PatternLayoutEncoder enc = (PatternLayoutEncoder) a.getEncoder();
        ch.qos.logback.classic.Logger l = c.getLogger("x");
        assertEquals("error: boom" + System.lineSeparator(), enc.getLayout().doLayout(new LoggingEvent("x", l, Level.ERROR, "boom", null, null)));
        assertEquals("warning: careful" + System.lineSeparator(), enc.getLayout().doLayout(new LoggingEvent("x", l, Level.WARN, "careful", null, null)));
        assertEquals("info: hello" + System.lineSeparator(), enc.getLayout().doLayout(new LoggingEvent("x", l, Level.INFO, "hello", null, null)));
    }

    @Test
    void aConfigurationFileGivenByPropertyIsLeftToLogback() {
        String before = System.getProperty("logback.configurationFile");
        System.setProperty("logback.configurationFile", "config/logback.xml");
        try {
            LoggerContext c = new LoggerContext();
            LogSetup setup = new LogSetup();
            setup.setContext(c);
            assertEquals(Configurator.ExecutionStatus.INVOKE_NEXT_IF_ANY, setup.configure(c));
            assertNull(c.getLogger(Logger.ROOT_LOGGER_NAME).getAppender("STDERR"));
        } finally {
            if (before == null) System.clearProperty("logback.configurationFile"); else System.setProperty("logback.configurationFile", before);
        }
    }

    @Test
    void theRootLevelPropertyIsHonoured() {
        String before = System.getProperty(LogSetup.LEVEL_PROPERTY);
        System.setProperty(LogSetup.LEVEL_PROPERTY, "DEBUG");
        try {
            LoggerContext c = new LoggerContext();
            LogSetup setup = new LogSetup();
            setup.setContext(c);
            setup.configure(c);
            assertEquals(Level.DEBUG, c.getLogger(Logger.ROOT_LOGGER_NAME).getLevel());
        } finally {
            if (before == null) System.clearProperty(LogSetup.LEVEL_PROPERTY); else System.setProperty(LogSetup.LEVEL_PROPERTY, before);
        }
    }
}
