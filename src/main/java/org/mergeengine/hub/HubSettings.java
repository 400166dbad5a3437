package org.mergeengine.hub;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;

/**
 * Where the hub is and how to reach it, read as huggingface_hub reads it: HF_ENDPOINT, HF_TOKEN
 * (else the token file), HF_HOME / HF_HUB_CACHE, HF_HUB_OFFLINE.
 */
public record HubSettings(URI endpoint, String token, Path cacheDir, boolean offline, Duration timeout, int retries, Duration backoff) {

    public static HubSettings fromEnvironment(Map<String, String> env, Path cacheOverride, boolean offlineFlag) {
        String ep = env.getOrDefault("HF_ENDPOINT", "https://huggingface.co").trim();
        while (ep.endsWith("/")) ep = ep.substring(0, ep.length() - 1);
        Path home = env.containsKey("HF_HOME") ? Path.of(env.get("HF_HOME"))
                : env.containsKey("XDG_CACHE_HOME") ? Path.of(env.get("XDG_CACHE_HOME"), "huggingface")
                : Path.of(env.getOrDefault("HOME", System.getProperty("user.home")), ".cache", "huggingface");
        Path cache = cacheOverride != null ? cacheOverride
                : env.containsKey("HF_HUB_CACHE") ? Path.of(env.get("HF_HUB_CACHE"))
                : env.containsKey("HUGGINGFACE_HUB_CACHE") ? Path.of(env.get("HUGGINGFACE_HUB_CACHE"))
                : home.resolve("hub");
        String token = blankToNull(env.get("HF_TOKEN"));
        if (token == null) {
            Path tokenFile = env.containsKey("HF_TOKEN_PATH") ? Path.of(env.get("HF_TOKEN_PATH")) : home.resolve("token");
            try {
                if (Files.isRegularFile(tokenFile)) token = blankToNull(Files.readString(tokenFile).trim());
            } catch (IOException ignored) {
                // no readable token file: anonymous access
            }
        }
        boolean offline = offlineFlag || truthy(env.get("HF_HUB_OFFLINE")) || truthy(env.get("TRANSFORMERS_OFFLINE"));
        return new HubSettings(URI.create(ep), token, cache, offline, timeout(env.get("HF_HUB_DOWNLOAD_TIMEOUT")), 5, Duration.ofSeconds(1));
    }

    /** How long a request may wait for its answer and a body for its next bytes: HF_HUB_DOWNLOAD_TIMEOUT seconds, else 30. */
    static Duration timeout(String v) {
        try {
            double secs = v == null ? 30 : Double.parseDouble(v.strip());
            return secs > 0 && secs < 86_400 ? Duration.ofMillis(Math.round(secs * 1000)) : Duration.ofSeconds(30);
        } catch (NumberFormatException e) {
            return Duration.ofSeconds(30);
        }
    }

    static boolean truthy(String v) {
        return v != null && java.util.Set.of("1", "ON", "YES", "TRUE").contains(v.trim().toUpperCase(Locale.ROOT));
    }

    private static String blankToNull(String s) {
        return s == null || s.isBlank() ? null : s;
    }

    /** How long to wait for a connection: a hub that does not answer the handshake in seconds is not there. */
    public Duration connectTimeout() {
        Duration shortWait = Duration.ofSeconds(5);
        return timeout.compareTo(shortWait) < 0 ? timeout : shortWait;
    }

    @Override
    public String toString() {
        // never print the token
        return "HubSettings[endpoint=" + Urls.show(endpoint) + ", token=" + (token == null ? "none" : "set") + ", cache=" + cacheDir + ", offline=" + offline + "]";
    }
}
