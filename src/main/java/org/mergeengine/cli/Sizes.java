package org.mergeengine.cli;

import java.util.Locale;

/** Sizes as mergekit's --out-shard-size takes them: a number with an optional k/M/B (decimal) suffix. */
final class Sizes {
    private Sizes() {}

    static long parse(String text) {
        String s = text.trim().toUpperCase(Locale.ROOT).replace("_", "");
        if (s.endsWith("B") && s.length() > 1 && Character.isLetter(s.charAt(s.length() - 2))) s = s.substring(0, s.length() - 1); // 5GB -> 5G
        double mult = 1;
        char last = s.isEmpty() ? ' ' : s.charAt(s.length() - 1);
        switch (last) {
            case 'K': mult = 1e3; break;
            case 'M': mult = 1e6; break;
            case 'B': case 'G': mult = 1e9; break;
            case 'T': mult = 1e12; break;
            default: break;
        }
        if (mult != 1) s = s.substring(0, s.length() - 1);
        try {
            double v = Double.parseDouble(s);
            if (v < 0 || Double.isNaN(v)) throw new NumberFormatException();
            return (long) (v * mult);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + text + "' is not a size: use a number with an optional k, M, B (billion) or G suffix, e.g. 5B or 500M");
        }
    }

    static String human(long bytes) {
        if (bytes < 1000) return bytes + " B";
        String[] u = {"kB", "MB", "GB", "TB"};
        double v = bytes;
        int i = -1;
        while (v >= 1000 && i < u.length - 1) {
            v /= 1000;
            i++;
        }
        return String.format(Locale.ROOT, "%.2f %s", v, u[i]);
    }
}
