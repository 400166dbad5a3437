package org.mergeengine.cli;

import java.io.PrintStream;
import java.util.Locale;
import java.util.function.Consumer;
import org.mergeengine.engine.Progress;

/** A progress bar on a terminal; plain lines every few seconds otherwise (logs, CI). */
final class ProgressPrinter implements Consumer<Progress> {
    private final PrintStream err;
    private final boolean terminal;
    private long lastPrint;
    private Progress first;

    ProgressPrinter(PrintStream err, boolean terminal) {
        this.err = err;
        this.terminal = terminal;
    }

    @Override
    public synchronized void accept(Progress p) {
        if (first == null) first = p;
        long now = System.nanoTime();
        boolean last = p.tensorsDone() == p.tensorsTotal();
        long gap = terminal ? 100_000_000L : 5_000_000_000L;
        if (!last && now - lastPrint < gap) return;
        lastPrint = now;
        double secs = p.elapsedNanos() / 1e9;
        double mbps = secs > 0 ? p.inputBytesDone() / 1e6 / secs : 0;
        double frac = p.fraction();
        double left = p.etaSeconds(first);
        String eta = last ? String.format(Locale.ROOT, "merged in %.2fs", secs)
                : left >= 0 ? String.format(Locale.ROOT, "ETA %.0fs", left) : String.format(Locale.ROOT, "%.1fs so far", secs);
        if (terminal) {
            int width = 30, filled = (int) Math.round(frac * width);
            err.print(String.format(Locale.ROOT, "\r[%s%s] %d/%d tensors %6.1f MB/s %s   ",
                    "#".repeat(filled), " ".repeat(width - filled), p.tensorsDone(), p.tensorsTotal(), mbps, eta));
            if (last) err.println();
        } else {
            err.println(String.format(Locale.ROOT, "progress: %d/%d tensors (%.0f%%), %.1f MB/s, %s",
                    p.tensorsDone(), p.tensorsTotal(), frac * 100, mbps, eta));
        }
        err.flush();
    }
}
