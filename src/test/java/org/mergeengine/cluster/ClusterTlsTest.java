package org.mergeengine.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mergeengine.cluster.ClusterTestSupport.FAST;
import static org.mergeengine.cluster.ClusterTestSupport.TLS_DIR;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.AddressFromURIString;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.JoinSeedNodes;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.MergeException;

/** Cluster remoting over TLS with mutual authentication: who may join, and which addresses a node may bind without it. */
class ClusterTlsTest {
    @TempDir
    Path dir;

    /** A process that speaks the cluster protocol, reaches the port and knows the seed's address, but holds no key the cluster trusts. */
    static ActorSystem<Void> outsider(String name, Map<String, Object> remoting) {
        Map<String, Object> m = new HashMap<>(remoting);
        m.put("pekko.actor.provider", "cluster");
        m.put("pekko.remote.artery.canonical.hostname", "127.0.0.1");
        m.put("pekko.remote.artery.canonical.port", 0);
        m.put("pekko.cluster.jmx.enabled", "off");
        m.put("pekko.loglevel", "OFF");
        m.put("pekko.stdout-loglevel", "OFF");
        // The cluster's own settings otherwise (its downing provider, serializers), so that nothing but the key keeps it out.
        Config c = ConfigFactory.parseMap(m).withFallback(FAST)
                .withFallback(ConfigFactory.parseResources(ClusterTlsTest.class.getClassLoader(), "merge-engine-cluster.conf"))
                .withFallback(ConfigFactory.load()).resolve();
        return ActorSystem.create(Behaviors.empty(), "merge-engine", c);
    }

    static boolean up(ActorSystem<?> s) {
        return Cluster.get(s).selfMember().status() == MemberStatus.up();
    }

    @Test
    void aProcessWithoutTheClustersKeyCannotJoin() throws Exception {
        MergeNode seed = ClusterTestSupport.node(dir.resolve("c1"), List.of(), Duration.ZERO, 1, "s");
        ActorSystem<Void> plain = null, ownKey = null;
        MergeNode member = null;
        try {
            // TLS with a key pair of its own, made the same way: not one the cluster trusts.
            ClusterTls.Material own = ClusterTls.local(dir.resolve("outsider-key"));
            String p = "pekko.remote.artery.ssl.config-ssl-engine.";
            ownKey = outsider("own-key", Map.of("pekko.remote.artery.transport", "tls-tcp",
                    p + "key-store", own.keyStore().toString(), p + "key-store-password", own.password(), p + "key-password", own.password(),
                    p + "trust-store", own.trustStore().toString(), p + "trust-store-password", own.password()));
            plain = outsider("plain", Map.of("pekko.remote.artery.transport", "tcp"));
            for (ActorSystem<Void> o : List.of(ownKey, plain)) {
                Cluster.get(o).manager().tell(new JoinSeedNodes(List.of(AddressFromURIString.parse(seed.address()))));
            }
            // A node with the cluster's key, started after the outsiders began to knock, gets in.
            member = ClusterTestSupport.node(dir.resolve("c2"), List.of(seed.address()), Duration.ZERO, 1, "m");
            assertTrue(up(seed.system()) && up(member.system()));
            assertEquals(2, seed.members().size(), "the seed and the member only: " + seed.members());
            assertTrue(seed.members().contains(member.address()));
            for (ActorSystem<Void> o : List.of(ownKey, plain)) {
                assertFalse(up(o), o.name() + " joined");
                String addr = Cluster.get(o).selfMember().address().toString();
                assertFalse(seed.members().contains(addr), addr);
                assertFalse(Cluster.get(seed.system()).state().getMembers().toString().contains(addr.substring(addr.lastIndexOf(':'))),
                        "not even joining: " + Cluster.get(seed.system()).state().getMembers());
            }
        } finally {
            for (ActorSystem<Void> o : new ActorSystem[] {plain, ownKey}) if (o != null) o.terminate();
            if (member != null) member.close();
            seed.close();
        }
    }

    static MergeNode.Settings on(String host, Map<String, Object> tls) {
        return new MergeNode.Settings(host, 0, List.of(), List.of(), 1 << 20, null, 1, ConfigFactory.parseMap(tls).withFallback(FAST));
    }

    @Test
    void aNonLoopbackAddressIsRefusedWithoutTls() {
        for (String host : List.of("192.0.2.10", "0.0.0.0")) {
            MergeException e = assertThrows(MergeException.class, () -> MergeNode.config(on(host, Map.of())));
            assertEquals(MergeException.Kind.USER, e.kind());
            assertTrue(e.getMessage().contains("without TLS") && e.getMessage().contains("key-store"), e.getMessage());
            MergeException off = assertThrows(MergeException.class, () -> MergeNode.config(on(host, Map.of("merge-engine.cluster.tls.enabled", "off"))));
            assertTrue(off.getMessage().contains("without TLS"), off.getMessage());
        }
        // Announced as loopback but bound to every interface: the bind address counts.
        MergeException viaBind = assertThrows(MergeException.class, () -> MergeNode.config(on("127.0.0.1", Map.of("pekko.remote.artery.bind.hostname", "0.0.0.0"))));
        assertTrue(viaBind.getMessage().contains("0.0.0.0"), viaBind.getMessage());
        // Plain TCP only when asked for, and only on loopback.
        assertEquals("tcp", MergeNode.config(on("127.0.0.1", Map.of("merge-engine.cluster.tls.enabled", "off"))).getString("pekko.remote.artery.transport"));
        assertEquals("tls-tcp", MergeNode.config(on("127.0.0.1", Map.of())).getString("pekko.remote.artery.transport"));
    }

    @Test
    void storesTheUserGivesAreUsedOnAnyAddress() throws Exception {
        ClusterTls.Material m = ClusterTls.local(TLS_DIR); // stands for stores the user made
        Path pw = Files.writeString(dir.resolve("pw"), m.password() + "\n");
        Config c = MergeNode.config(on("192.0.2.10", Map.of("merge-engine.cluster.tls.key-store", m.keyStore().toString(),
                "merge-engine.cluster.tls.trust-store", m.trustStore().toString(), "merge-engine.cluster.tls.password-file", pw.toString())));
        String p = "pekko.remote.artery.ssl.config-ssl-engine.";
        assertEquals("tls-tcp", c.getString("pekko.remote.artery.transport"));
        assertEquals(m.keyStore().toAbsolutePath().toString(), c.getString(p + "key-store"));
        assertEquals(m.trustStore().toAbsolutePath().toString(), c.getString(p + "trust-store"));
        assertEquals(m.password(), c.getString(p + "key-store-password"));
        assertTrue(c.getBoolean(p + "require-mutual-authentication"));
        MergeException noTrust = assertThrows(MergeException.class, () -> MergeNode.config(on("192.0.2.10",
                Map.of("merge-engine.cluster.tls.key-store", m.keyStore().toString()))));
        assertTrue(noTrust.getMessage().contains("trust-store"), noTrust.getMessage());
    }

    @Test
    void theLocalKeyIsReadableByTheUserOnlyAndMadeOnce() throws Exception {
        ClusterTls.Material a = ClusterTls.local(dir.resolve("k"));
        ClusterTls.Material b = ClusterTls.local(dir.resolve("k"));
        assertEquals(a, b);
        assertArrayEquals(Files.readAllBytes(a.keyStore()), Files.readAllBytes(b.keyStore()));
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve("k"))));
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve("k/password"))));
        assertNotEquals(a.password(), ClusterTls.local(dir.resolve("other")).password());
    }
}
