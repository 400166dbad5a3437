package org.mergeengine.formats;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.mergeengine.TestSupport;
import org.mergeengine.tensor.Convert;
import org.mergeengine.tools.SyntheticModel;

/** Files of a model or adapter folder that resolve outside it are never read, so never copied into an output. */
class SymlinkedFilesTest {
    @TempDir
    Path dir;

    static final String SECRET = "hf_secret_token_that_must_not_travel";

    private Path model(String name) throws Exception {
        Path m = dir.resolve(name);
        SyntheticModel.write(m, SyntheticModel.Spec.tiny(), DType.BF16, 1, 1, 0, 0);
        return m;
    }

    private Path secret() throws Exception {
        Path s = dir.resolve("home/.cache/huggingface/token");
        Files.createDirectories(s.getParent());
        return Files.writeString(s, "{\"token\": \"" + SECRET + "\"}");
    }

    private TestSupport.Result merge(Path model, Path out, String extra) throws Exception {
        Path cfg = Files.writeString(dir.resolve("c" + System.nanoTime() + ".yaml"),
                "merge_method: linear\nmodels:\n  - model: " + model + "\n    parameters: {weight: 1}\n" + extra);
        return TestSupport.cli(cfg.toString(), out.toString(), "--quiet");
    }

    private static boolean anyFileHolds(Path folder, String text) throws Exception {
        if (!Files.exists(folder)) return false;
        try (Stream<Path> s = Files.walk(folder)) {
            for (Path f : s.filter(Files::isRegularFile).toList()) if (Files.readString(f, java.nio.charset.StandardCharsets.ISO_8859_1).contains(text)) return true;
        }
        return false;
    }

    @Test
    void tokenizerFilesThatLinkOutOfTheFolderAreRefusedAndNotCopied() throws Exception {
        Path secret = secret();
        for (String f : List.of("special_tokens_map.json", "merges.txt", "generation_config.json", "tokenizer_config.json")) {
            Path m = model("m-" + f);
            Files.deleteIfExists(m.resolve(f));
            Files.createSymbolicLink(m.resolve(f), secret);
            Path out = dir.resolve("out-" + f);
            TestSupport.Result r = merge(m, out, "");
            assertEquals(2, r.exitCode(), f + ": " + r.stderr());
            assertTrue(r.stderr().contains(m.resolve(f).toString()) && r.stderr().contains("outside"), r.stderr());
            assertFalse(anyFileHolds(out, SECRET), f + " was copied");
            assertFalse(r.stderr().contains("\tat "), r.stderr());
        }
    }

    @Test
    void aChatTemplateThatLinksOutOfTheFolderIsRefused() throws Exception {
        Path m = model("chat");
        Files.createSymbolicLink(m.resolve("chat_template.jinja"), secret());
        Path out = dir.resolve("out-chat");
        TestSupport.Result r = merge(m, out, "chat_template: auto\n");
        assertEquals(2, r.exitCode(), r.stderr());
        assertTrue(r.stderr().contains("chat_template.jinja") && r.stderr().contains("outside"), r.stderr());
        assertFalse(anyFileHolds(out, SECRET));
    }

    @Test
    void linksThatStayInsideTheFolderAreFollowed() throws Exception {
        Path m = model("inside");
        Path sub = Files.createDirectories(m.resolve("originals"));
        Files.move(m.resolve("special_tokens_map.json"), sub.resolve("special_tokens_map.json"));
        Files.createSymbolicLink(m.resolve("special_tokens_map.json"), Path.of("originals/special_tokens_map.json"));
        Path out = dir.resolve("out-inside");
        TestSupport.Result r = merge(m, out, "");
        assertEquals(0, r.exitCode(), r.stderr());
        assertEquals(Files.readString(sub.resolve("special_tokens_map.json")), Files.readString(out.resolve("special_tokens_map.json")));
    }

    @Test
    void aNameThatClimbsOutOfTheFolderIsRefused() throws Exception {
        Path m = model("climb");
        secret();
        assertThrows(FormatException.class, () -> ModelFolder.resolveInside(m, "../home/.cache/huggingface/token", m));
        assertThrows(FormatException.class, () -> ModelFolder.resolveInside(m, dir.resolve("home/.cache/huggingface/token").toString(), m));
        assertNotNull(ModelFolder.resolveInside(m, "config.json", m));
        assertEquals(null, ModelFolder.resolveInside(m, "no-such-file.json", m));
    }

    private Path adapter(String name) throws Exception {
        Path a = Files.createDirectories(dir.resolve(name));
        ObjectNode c = Json.MAPPER.createObjectNode();
        c.put("peft_type", "LORA").put("r", 2).put("lora_alpha", 2);
        Json.write(a.resolve("adapter_config.json"), c);
        SafetensorsWriter.writeFile(a.resolve("adapter_model.safetensors"), List.of(
                Convert.tensorData("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", DType.F32, new long[] {2, 4}, new float[8]),
                Convert.tensorData("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", DType.F32, new long[] {4, 2}, new float[8])));
        return a;
    }

    @Test
    void adapterFilesThatLinkOutOfTheFolderAreRefused() throws Exception {
        Path secret = secret();
        for (String f : List.of("adapter_config.json", "adapter_model.safetensors", "tokenizer.json")) {
            Path a = adapter("adapter-" + f);
            Path elsewhere = dir.resolve("elsewhere-" + f);
            if (Files.exists(a.resolve(f))) Files.move(a.resolve(f), elsewhere);
            else Files.copy(secret, elsewhere);
            Files.createSymbolicLink(a.resolve(f), elsewhere);
            FormatException e = assertThrows(FormatException.class, () -> LoraAdapter.open(a).close(), f);
            assertTrue(e.getMessage().contains(a.resolve(f).toString()) && e.getMessage().contains("outside"), e.getMessage());
        }
        try (LoraAdapter ok = LoraAdapter.open(adapter("adapter-plain"))) {
            assertEquals(1, ok.updates().size());
        }
    }

    @Test
    void copiedFilesGetNoWiderPermissionsThanTheirSource() throws Exception {
        Path m = model("private");
        Path src = m.resolve("special_tokens_map.json");
        Files.setPosixFilePermissions(src, PosixFilePermissions.fromString("rw-------"));
        Path out = dir.resolve("out-private");
        TestSupport.Result r = merge(m, out, "");
        assertEquals(0, r.exitCode(), r.stderr());
        Set<PosixFilePermission> got = Files.getPosixFilePermissions(out.resolve("special_tokens_map.json"));
        assertTrue(PosixFilePermissions.fromString("rw-------").containsAll(got), "output special_tokens_map.json is " + PosixFilePermissions.toString(got));
    }
}
