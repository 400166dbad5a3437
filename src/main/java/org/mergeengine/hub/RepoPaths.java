package org.mergeengine.hub;

import java.util.regex.Pattern;

/**
 * Checks on repository ids and file names from configs and servers, so that none can point outside
 * the cache folder: no absolute paths, no "..", no backslashes, no empty segments.
 */
public final class RepoPaths {
    private static final Pattern PART = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]*");
    private static final Pattern COMMIT = Pattern.compile("[0-9a-f]{40}");

    private RepoPaths() {}

    /** A hub repository id: "name" or "org/name". */
    public static boolean isRepoId(String s) {
        String[] p = s.split("/", -1);
        if (p.length > 2) return false;
        for (String x : p) if (!PART.matcher(x).matches() || x.contains("..")) return false;
        return true;
    }

    /** A file path inside a repository: relative, "/"-separated, no "." or ".." segments, no backslash. */
    public static String checkFile(String repo, String f) {
        boolean ok = !f.isEmpty() && !f.startsWith("/") && !f.contains("\\") && !f.contains("\0") && !f.contains(":");
        if (ok) {
            for (String seg : f.split("/", -1)) ok &= !seg.isEmpty() && !seg.equals(".") && !seg.equals("..");
        }
        if (!ok) throw new HubException("refusing file name '" + f + "' of " + repo + ": it would leave the repository's folder");
        return f;
    }

    public static boolean isCommit(String rev) {
        return rev != null && COMMIT.matcher(rev).matches();
    }

    /** huggingface_hub's folder name: models--org--name. */
    public static String folder(String repo) {
        return "models--" + repo.replace("/", "--");
    }

    /** An etag names a blob file: hex only. */
    public static String checkEtag(String repo, String file, String etag) {
        if (etag == null || !etag.matches("[0-9a-fA-F]{8,128}")) {
            throw new HubException("the hub gave " + repo + "/" + file + " an unusable etag '" + etag + "'");
        }
        return etag;
    }
}
