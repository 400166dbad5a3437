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
            // Equal distances prefer the candidate of the same length (a transposed or replaced letter).
            int d = distance(in, c.toLowerCase(Locale.ROOT)) * 64 + Math.min(63, Math.abs(c.length() - in.length()));
            if (d < bestD) {
                bestD = d;
                best = c;
            }
        }
        if (best == null) return null;
        int limit = Math.max(2, best.length() / 3);
        return bestD / 64 <= limit ? best : null;
    }

    public static String suggestion(String input, Collection<String> candidates) {
        String n = nearest(input, candidates);
        return n == null ? "" : " (did you mean '" + n + "'?)";
    }

    /** Edit distance where swapping two neighbouring letters is one edit (optimal string alignment). */
    static int distance(String a, String b) {
        int[][] d = new int[a.length() + 1][b.length() + 1];
        for (int i = 0; i <= a.length(); i++) d[i][0] = i;
        for (int j = 0; j <= b.length(); j++) d[0][j] = j;
        for (int i = 1; i <= a.length(); i++) {
            for (int j = 1; j <= b.length(); j++) {
                int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1;
                d[i][j] = Math.min(Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1), d[i - 1][j - 1] + cost);
                if (i > 1 && j > 1 && a.charAt(i - 1) == b.charAt(j - 2) && a.charAt(i - 2) == b.charAt(j - 1)) {
                    d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
                }
            }
        }
        return d[a.length()][b.length()];
    }
}
