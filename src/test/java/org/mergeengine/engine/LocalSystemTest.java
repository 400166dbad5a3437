package org.mergeengine.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.SerializationExtension$;
import org.junit.jupiter.api.Test;

/** The engine's own actor system starts without the serialization extension, which is still there when asked for. */
class LocalSystemTest {
    @Test
    void serializationStartsOnlyWhenUsed() {
        try (MergeEngine engine = new MergeEngine()) {
            ActorSystem classic = Adapter.toClassic(engine.system());
            assertFalse(classic.hasExtension(SerializationExtension$.MODULE$), "the serializers are not built at start");
            assertTrue(engine.system().settings().config().getStringList("pekko.library-extensions").stream().anyMatch(e -> e.contains("SystemMaterializer")),
                    "the other library extensions still start");
            Serialization s = SerializationExtension.get(classic);
            byte[] bytes = s.serialize("up_proj").get();
            assertEquals("up_proj", s.deserialize(bytes, String.class).get());
            assertTrue(classic.hasExtension(SerializationExtension$.MODULE$));
        }
    }
}
