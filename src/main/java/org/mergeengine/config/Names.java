package org.mergeengine.config;

import java.util.Collection;
import java.util.Locale;

/** "Did you mean" suggestions for misspelled keys and method names. */
public final class Names {
    private Names() {}

    /** The closest candidate, or null if none is close enough to be a plausible typo. */
    public static String nearest(String input, Collection<String> candidates) {
        String in = input.toLowerCase(Locale.ROOT).replace('-', '_').replace(' ', '_');
        String best = null;
        int bestD = Integer.MAX_VALUE;
        for (String c : candidates) {
            int d = distance(in, c.toLowerCase(Locale.ROOT));
            if (d < bestD) {
                bestD = d;
                best = c;
            }
        }
        if (best == null) return null;
        int limit = Math.max(2, best.length() / 3);
        return bestD <= limit ? best : null;
    }

    public static String suggestion(String input, Collection<String> candidates) {
        String n = nearest(input, candidates);
        return n == null ? "" : " (did you mean '" + n + "'?)";
    }

    static int distance(String a, String b) {
        int[] prev = new int[b.length() + 1], cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) prev[j] = j;
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1;
                cur[j] = Math.min(Math.min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost);
            }
            int[] t = prev; prev = cur; cur = t;
        }
        return prev[b.length()];
    }
}
