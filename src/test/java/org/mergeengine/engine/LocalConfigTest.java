package org.mergeengine.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValue;
import java.net.URL;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A local engine's actor system reads only the reference settings of the Pekko modules it uses:
 * each of its settings must be what the full configuration (every module's reference) gives, so
 * that the smaller parse changes nothing but the time.
 */
class LocalConfigTest {
    @Test
    void theLocalModulesSettingsAreThoseOfTheFullConfiguration() {
        assertNotSame(MergeEngine.class.getClassLoader(), LocalReferenceLoader.get(),
                "the build puts the modules' reference settings on the class path");
        Config local = MergeEngine.loadConfig();
        Config full = ConfigFactory.load();
        List<String> differ = new ArrayList<>();
        int compared = 0;
        for (Map.Entry<String, ConfigValue> e : local.entrySet()) {
            String path = e.getKey();
            if (path.equals("pekko.library-extensions")) continue; // compared below: loadConfig edits it on purpose
            if (!path.startsWith("pekko.")) continue; // the JVM's system properties, the same in both
            compared++;
            if (!full.hasPath(path) || !full.getValue(path).unwrapped().equals(e.getValue().unwrapped())) differ.add(path);
        }
        assertTrue(compared > 300, "compared " + compared + " settings");
        assertEquals(List.of(), differ, "settings that differ from the full configuration");
        assertEquals(full.getString("pekko.version"), local.getString("pekko.version"));
        // The application's own settings (application.conf) still apply on top.
        assertEquals("local", local.getString("pekko.actor.provider"));
        assertEquals(full.getStringList("pekko.loggers"), local.getStringList("pekko.loggers"));
        // The extensions of the local modules, less the serialization one, and none of the others'.
        List<String> fullExt = new ArrayList<>(MergeEngine.withoutSerialization(full).getStringList("pekko.library-extensions"));
        List<String> localExt = local.getStringList("pekko.library-extensions");
        assertTrue(fullExt.containsAll(localExt), localExt + " within " + fullExt);
        fullExt.removeIf(x -> x.contains(".remote.") || x.contains(".cluster."));
        assertEquals(new HashSet<>(fullExt), new HashSet<>(localExt));
    }

    @Test
    void theActorSystemChecksItsSettingsAgainstTheLocalModulesOnly() throws Exception {
        ClassLoader loader = LocalReferenceLoader.get();
        List<URL> refs = Collections.list(loader.getResources("reference.conf"));
        assertEquals(LocalReferenceLoader.LOCAL_MODULES.size(), refs.size(), refs.toString());
        assertTrue(Collections.list(MergeEngine.class.getClassLoader().getResources("reference.conf")).size() > refs.size());
        // Classes and every other resource come from the application's loader, unchanged.
        assertSame(MergeEngine.class, loader.loadClass(MergeEngine.class.getName()));
        assertEquals(MergeEngine.class.getClassLoader().getResource("application.conf"), loader.getResource("application.conf"));
        try (MergeEngine engine = new MergeEngine()) {
            Config c = engine.system().settings().config();
            assertFalse(c.hasPath("pekko.remote"));
            assertFalse(c.hasPath("pekko.cluster"));
            assertSame(loader, engine.system().dynamicAccess().classLoader());
            assertFalse(c.getStringList("pekko.library-extensions").contains("org.apache.pekko.serialization.SerializationExtension$"));
        }
        assertTrue(ConfigFactory.load().hasPath("pekko.remote.artery"), "the full configuration has them");
    }
}
