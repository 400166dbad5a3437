package org.mergeengine.moe;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.ModelRef;

/**
 * The MoE checkpoints mergekit-moe can write, in its registry order (which decides ties), and
 * which configs each accepts: input model types, and how many shared experts and whether they
 * are routed.
 */
public enum MoeArchitecture {
    MIXTRAL("Mixtral"),
    DEEPSEEK("DeepSeek MoE"),
    QWEN("Qwen MoE"),
    QWEN3("Qwen3 MoE");

    private final String displayName;

    MoeArchitecture(String displayName) {
        this.displayName = displayName;
    }

    public String displayName() {
        return displayName;
    }

    /** Why this output cannot take the config, or null when it can. {@code types}: each model's config.json model_type. */
    public String rejection(MoeConfig cfg, Map<ModelRef, String> types) {
        List<MoeConfig.Expert> shared = cfg.sharedExperts();
        switch (this) {
            case MIXTRAL:
                if (!shared.isEmpty()) return "Mixtral does not support shared experts";
                return sameTypeAmong(cfg, types, Set.of("llama", "mistral"), "Llama or Mistral");
            case DEEPSEEK:
                if (shared.size() > 1) return "DeepSeek MoE supports at most one shared expert";
                if (!shared.isEmpty() && shared.get(0).hasPrompts()) return "DeepSeek MoE does not support gating shared experts (remove the shared expert's prompts)";
                return sameTypeAmong(cfg, types, Set.of("llama", "mistral"), "Llama or Mistral");
            case QWEN:
                if (shared.size() != 1) return "Qwen MoE requires exactly one shared expert";
                if (!cfg.gateMode().equals("random") && shared.get(0).positivePrompts().isEmpty()) {
                    return "Qwen MoE requires the shared expert to have prompts (unless gate_mode is random)";
                }
                return sameTypeAmong(cfg, types, Set.of("llama", "mistral", "qwen2"), "Qwen2, Llama or Mistral");
            case QWEN3:
                if (!shared.isEmpty()) return "Qwen3 MoE does not support shared experts";
                for (ModelRef r : cfg.models()) {
                    if (!"qwen3".equals(types.get(r))) return "Qwen3 MoE only supports Qwen3 input models (" + r + " is " + types.get(r) + ")";
                }
                return null;
            default:
                throw new IllegalStateException();
        }
    }

    private static String sameTypeAmong(MoeConfig cfg, Map<ModelRef, String> types, Set<String> allowed, String words) {
        Set<String> seen = new HashSet<>();
        for (ModelRef r : cfg.models()) seen.add(String.valueOf(types.get(r)));
        if (seen.size() > 1) return "all models must have the same architecture, found model types " + seen;
        String t = seen.iterator().next();
        if (!allowed.contains(t)) return "requires " + words + " input models, found model type " + t;
        return null;
    }

    /** The chosen output and the lines to tell the user (warnings). */
    public record Choice(MoeArchitecture arch, List<String> warnings) {}

    /**
     * mergekit-moe's choice: the entries whose display name starts with {@code architecture:}
     * (case-insensitive), those that accept the config, Mixtral if it is among them, else the
     * first. Every rejection is reported, with its reason (mergekit shows them only with -v).
     */
    public static Choice choose(MoeConfig cfg, Map<ModelRef, String> types) {
        List<MoeArchitecture> filtered = new ArrayList<>();
        String want = cfg.architecture() == null ? "" : cfg.architecture().toLowerCase(Locale.ROOT);
        for (MoeArchitecture a : values()) if (a.displayName.toLowerCase(Locale.ROOT).startsWith(want)) filtered.add(a);
        if (filtered.isEmpty()) {
            throw new ConfigException("architecture", "No output architecture found that matches the given architecture: " + cfg.architecture()
                    + "; the value is matched against the start of a name: " + supportedList());
        }
        List<MoeArchitecture> ok = new ArrayList<>();
        List<String> reasons = new ArrayList<>();
        for (MoeArchitecture a : filtered) {
            String why = a.rejection(cfg, types);
            if (why == null) ok.add(a);
            else reasons.add(a.displayName + ": " + why);
        }
        if (ok.isEmpty()) {
            throw new ConfigException(cfg.architecture() != null ? "architecture" : "base_model",
                    "No output architecture found that is compatible with the given models: " + String.join("; ", reasons)
                            + ". Supported: " + supportedList());
        }
        List<String> warnings = new ArrayList<>();
        if (ok.contains(MIXTRAL)) return new Choice(MIXTRAL, warnings);
        if (ok.size() > 1) {
            List<String> names = ok.stream().map(MoeArchitecture::displayName).toList();
            warnings.add("Multiple output architectures found (" + String.join(", ", names) + "); defaulting to " + ok.get(0).displayName
                    + " (set architecture: to choose)");
        }
        return new Choice(ok.get(0), warnings);
    }

    static String supportedList() {
        List<String> n = new ArrayList<>();
        for (MoeArchitecture a : values()) n.add(a.displayName);
        return String.join(", ", n);
    }
}
