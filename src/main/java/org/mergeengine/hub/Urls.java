package org.mergeengine.hub;

import java.net.URI;
import java.util.regex.Pattern;

/**
 * URLs as they may be shown: without user info. {@code HF_ENDPOINT=http://user:password@host}
 * would otherwise carry the password into error messages, logs and the HTTP API's answers.
 */
public final class Urls {
    private Urls() {}

    /**
     * {@code scheme://user:password@} up to the host (user info cannot contain '/', '?' or '#').
     * Pekko addresses keep theirs: {@code pekko://merge-engine@host} names the actor system.
     */
    private static final Pattern USER_INFO = Pattern.compile("(?i)\\b(?!pekko://|akka://)([a-z][a-z0-9+.-]*://)[^/?#@\\s]*@");

    /** The text with the user info of every URL in it removed. */
    public static String redact(String text) {
        if (text == null || text.indexOf('@') < 0) return text;
        return USER_INFO.matcher(text).replaceAll("$1");
    }

    /** A URL for a message. */
    public static String show(URI u) {
        return u == null ? "null" : redact(u.toString());
    }
}
