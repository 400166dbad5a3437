package org.mergeengine.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.io.IOException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.mergeengine.MergeException;

/**
 * Cluster remoting over TLS with mutual authentication: a process that reaches the cluster port
 * but holds no key the cluster trusts cannot join, and so never sees a job's config or folders.
 *
 * <p>The key store and trust store come from {@code merge-engine.cluster.tls} (see
 * merge-engine-cluster.conf; environment variables {@code MERGE_ENGINE_TLS_KEY_STORE},
 * {@code MERGE_ENGINE_TLS_TRUST_STORE}, {@code MERGE_ENGINE_TLS_PASSWORD}). Without them, a node
 * bound to a loopback address uses a key pair made once for this user's local cluster (in
 * {@code local-dir}, readable by the user only, made with the JDK's keytool); a node bound to any
 * other address is refused, since anyone on that network could join it.
 */
final class ClusterTls {
    private ClusterTls() {}

    static final String PATH = "merge-engine.cluster.tls";

    /** The Pekko settings that turn TLS on for a node bound to {@code host}, or a refusal. */
    static Config settings(Config all, String host) {
        Config t = all.getConfig(PATH);
        String keyStore = t.getString("key-store").strip();
        String bind = all.hasPath("pekko.remote.artery.bind.hostname") ? all.getString("pekko.remote.artery.bind.hostname").strip() : "";
        String bound = bind.isEmpty() ? host : bind;
        boolean loopback = loopback(bound);
        if (!t.getBoolean("enabled")) {
            if (!loopback) throw refusal(bound, "merge-engine.cluster.tls.enabled is off");
            return ConfigFactory.parseMap(Map.of("pekko.remote.artery.transport", "tcp"));
        }
        if (keyStore.isEmpty()) {
            if (!loopback) throw refusal(bound, "no key store is given");
            Path dir = localDir(t);
            Material m = local(dir);
            return pekko(m.keyStore(), m.trustStore(), m.password());
        }
        String trustStore = t.getString("trust-store").strip();
        if (trustStore.isEmpty()) {
            throw MergeException.user("merge-engine.cluster.tls.key-store is set but trust-store is not: give the trust store holding the certificates "
                    + "(or the CA) of every node, e.g. MERGE_ENGINE_TLS_TRUST_STORE");
        }
        for (String f : List.of(keyStore, trustStore)) {
            if (!Files.isReadable(Path.of(f))) throw MergeException.user("cluster TLS: cannot read " + f);
        }
        String password = password(t);
        return pekko(Path.of(keyStore), Path.of(trustStore), password);
    }

    private static MergeException refusal(String host, String why) {
        return MergeException.user("refusing to open the cluster port on " + host + " without TLS (" + why + "): anyone who reaches it could join "
                + "the cluster and read every merge's config. Give each node a key store and a trust store (-D" + PATH + ".key-store=FILE -D"
                + PATH + ".trust-store=FILE, password in MERGE_ENGINE_TLS_PASSWORD; see the README's Security section), or bind to 127.0.0.1");
    }

    static boolean loopback(String host) {
        try {
            return InetAddress.getByName(host).isLoopbackAddress();
        } catch (UnknownHostException e) {
            return false;
        }
    }

    private static String password(Config t) {
        String file = t.getString("password-file").strip();
        if (!file.isEmpty()) {
            try {
                return Files.readString(Path.of(file)).strip();
            } catch (IOException e) {
                throw MergeException.user("cluster TLS: cannot read the password file " + file + ": " + e.getMessage());
            }
        }
        return t.getString("password");
    }

    private static Config pekko(Path keyStore, Path trustStore, String password) {
        Map<String, Object> m = new HashMap<>();
        String p = "pekko.remote.artery.ssl.config-ssl-engine.";
        m.put("pekko.remote.artery.transport", "tls-tcp");
        m.put(p + "key-store", keyStore.toAbsolutePath().toString());
        m.put(p + "trust-store", trustStore.toAbsolutePath().toString());
        m.put(p + "key-store-password", password);
        m.put(p + "key-password", password);
        m.put(p + "trust-store-password", password);
        m.put(p + "require-mutual-authentication", "on");
        return ConfigFactory.parseMap(m);
    }

    static Path localDir(Config t) {
        String d = t.getString("local-dir").strip();
        if (!d.isEmpty()) return Path.of(d);
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path cache = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
        return cache.resolve("merge-engine").resolve("cluster-tls");
    }

    record Material(Path keyStore, Path trustStore, String password) {}

    /** The local cluster's key pair, made on first use; every process of this user on this machine shares it. */
    static Material local(Path dir) {
        // One store serves as both: a trust manager trusts the certificate of each key entry, and every local node has the same key.
        Path keyStore = dir.resolve("node.p12"), passFile = dir.resolve("password");
        try {
            createPrivateDir(dir);
            try (FileChannel lock = FileChannel.open(dir.resolve(".lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
                 FileLock ignored = lock.lock()) {
                if (!(Files.exists(keyStore) && Files.exists(passFile))) generate(dir, keyStore, passFile);
            }
            return new Material(keyStore, keyStore, Files.readString(passFile).strip());
        } catch (IOException e) {
            throw MergeException.user("cannot set up the local cluster's TLS key in " + dir + ": " + e.getMessage());
        }
    }

    private static void createPrivateDir(Path dir) throws IOException {
        if (Files.isDirectory(dir)) return;
        Files.createDirectories(dir.getParent());
        try {
            Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        } catch (UnsupportedOperationException e) {
            Files.createDirectory(dir);
        } catch (FileAlreadyExistsException e) {
            // made by another process meanwhile
        }
    }

    private static void generate(Path dir, Path keyStore, Path passFile) throws IOException {
        byte[] r = new byte[24];
        new SecureRandom().nextBytes(r);
        String password = HexFormat.of().formatHex(r);
        Path pass = dir.resolve("password.tmp"), ks = dir.resolve("node.p12.tmp");
        for (Path p : List.of(pass, ks)) Files.deleteIfExists(p);
        try {
            Files.createFile(pass, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        } catch (UnsupportedOperationException e) {
            Files.createFile(pass);
        }
        Files.writeString(pass, password, StandardCharsets.US_ASCII);
        String pf = pass.toString();
        // The password travels in a file, not on the command line where other users' ps would show it.
        keytool("-genkeypair", "-alias", "node", "-keyalg", "EC", "-groupname", "secp256r1", "-validity", "3650",
                "-dname", "CN=merge-engine local cluster", "-storetype", "PKCS12", "-keystore", ks.toString(), "-storepass:file", pf, "-keypass:file", pf);
        Files.move(ks, keyStore, StandardCopyOption.REPLACE_EXISTING);
        Files.move(pass, passFile, StandardCopyOption.REPLACE_EXISTING); // last: its presence says the rest is complete
    }

    private static void keytool(String... args) throws IOException {
        Path exe = Path.of(System.getProperty("java.home"), "bin", System.getProperty("os.name", "").startsWith("Windows") ? "keytool.exe" : "keytool");
        List<String> cmd = new ArrayList<>();
        cmd.add(exe.toString());
        cmd.addAll(List.of("-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC")); // a short run: start fast
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        try {
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException("keytool did not finish");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while running keytool");
        }
        if (p.exitValue() != 0) throw new IOException(exe + " " + args[0] + " failed: " + out.strip());
    }
}
