package org.mergeengine.plan;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.mergeengine.config.ConfigException;
import org.mergeengine.formats.Json;
import org.mergeengine.formats.ModelFolder;

/** {@code chat_template:} values: "auto", a built-in name, or a literal Jinja template. */
public final class ChatTemplates {
    static final Map<String, String> BUILT_IN = Map.of(
            "chatml", "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
                    + "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
            "alpaca", "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
                    + "{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
                    + "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}"
                    + "{% endfor %}{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}",
            "llama3", "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
                    + " + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
                    + "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
            "mistral", "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
                    + "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}",
            "exaone", "{% for message in messages %}{% if message['role'] == 'system' %}{{ '[|system|]' + message['content'] + '[|endofturn|]\\n' }}"
                    + "{% elif message['role'] == 'user' %}{{ '[|user|]' + message['content'] + '\\n' }}"
                    + "{% elif message['role'] == 'assistant' %}{{ '[|assistant|]' + message['content'] + '[|endofturn|]\\n' }}{% endif %}"
                    + "{% endfor %}{% if add_generation_prompt %}{{ '[|assistant|]' }}{% endif %}");

    private ChatTemplates() {}

    /** The template to write, or null to leave the tokenizer's own. */
    public static String resolve(String value, List<ModelFolder> models) {
        if (value == null) return null;
        if (value.equals("auto")) {
            Map<String, Integer> votes = new LinkedHashMap<>();
            for (ModelFolder m : models) {
                String t = templateOf(m);
                if (t != null) votes.merge(t.strip(), 1, Integer::sum);
            }
            String best = null;
            for (Map.Entry<String, Integer> e : votes.entrySet()) if (best == null || e.getValue() > votes.get(best)) best = e.getKey();
            return best;
        }
        String b = BUILT_IN.get(value);
        if (b != null) return b;
        if (value.length() < 20 || !value.contains("{")) {
            throw new ConfigException("chat_template", "'" + value + "' is neither 'auto', a built-in (" + String.join(", ", new java.util.TreeSet<>(BUILT_IN.keySet()))
                    + ") nor a Jinja template");
        }
        return value;
    }

    static String templateOf(ModelFolder m) {
        byte[] jinja = m.readTokenizerFile("chat_template.jinja");
        if (jinja != null) return new String(jinja, java.nio.charset.StandardCharsets.UTF_8);
        Path cfg = m.resolveTokenizerFile("tokenizer_config.json");
        if (cfg == null || !Files.isRegularFile(cfg)) return null;
        JsonNode t = Json.read(cfg).get("chat_template");
        if (t == null) return null;
        if (t.isTextual()) return t.asText();
        if (t.isArray()) {
            for (JsonNode e : t) if ("default".equals(e.path("name").asText())) return e.path("template").asText(null);
        }
        return null;
    }
}
