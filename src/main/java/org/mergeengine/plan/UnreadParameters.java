package org.mergeengine.plan;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.mergeengine.config.MergeConfig;
import org.mergeengine.config.Names;
import org.mergeengine.methods.MergeMethod;
import org.mergeengine.methods.MethodRegistry;
import org.mergeengine.methods.ParamSpec;

/**
 * Parameters that no part of the merge reads: the planner reads exactly the names the method's
 * {@link MergeMethod#parameters()} lists, so any other name in a {@code parameters:} block is either
 * a typo ({@code densty}) or a parameter of another method (a template's {@code density} in a
 * linear config). Both are warnings, not errors, so that configs from the wild still run; each
 * names its YAML path and the closest known name.
 */
public final class UnreadParameters {
    private UnreadParameters() {}

    /** One warning per parameter no part of the merge reads; none when the method is unknown (that is an error elsewhere). */
    public static List<String> check(MergeConfig cfg) {
        MergeMethod method = MethodRegistry.all().get(cfg.mergeMethod());
        if (method == null) return List.of();
        Set<String> read = new LinkedHashSet<>();
        for (ParamSpec p : method.parameters()) read.add(p.name());
        Map<String, Set<String>> owners = new LinkedHashMap<>();
        for (MergeMethod m : MethodRegistry.all().values()) {
            for (ParamSpec p : m.parameters()) owners.computeIfAbsent(p.name(), k -> new LinkedHashSet<>()).add(m.name());
        }
        List<String> warnings = new ArrayList<>();
        for (MergeConfig.Params block : blocks(cfg)) {
            for (String key : block.values().keySet()) {
                if (read.contains(key)) continue;
                String path = block.yamlPath() + "." + key;
                Set<String> of = owners.get(key);
                if (of != null) {
                    warnings.add(path + ": '" + key + "' is a parameter of " + String.join(", ", of) + ", not of " + method.name()
                            + "; nothing reads it here" + hint(key, read));
                } else {
                    String near = Names.nearest(key, read);
                    if (near == null) near = Names.nearest(key, owners.keySet());
                    warnings.add(path + ": unknown parameter '" + key + "'" + (near == null ? "" : " (did you mean '" + near + "'?)")
                            + "; nothing reads it" + (read.isEmpty() ? " (" + method.name() + " takes no parameters)"
                            : " (" + method.name() + " reads " + String.join(", ", read) + ")"));
                }
            }
        }
        return warnings;
    }

    private static String hint(String key, Set<String> read) {
        String near = Names.nearest(key, read);
        return near == null ? "" : " (did you mean '" + near + "'?)";
    }

    private static List<MergeConfig.Params> blocks(MergeConfig cfg) {
        List<MergeConfig.Params> b = new ArrayList<>();
        if (cfg.parameters() != null) b.add(cfg.parameters());
        if (cfg.models() != null) for (MergeConfig.ModelEntry m : cfg.models()) if (m.parameters() != null) b.add(m.parameters());
        if (cfg.slices() != null) {
            for (MergeConfig.OutputSlice s : cfg.slices()) {
                if (s.parameters() != null) b.add(s.parameters());
                for (MergeConfig.InputSlice i : s.sources()) if (i.parameters() != null) b.add(i.parameters());
            }
        }
        if (cfg.modules() != null) {
            for (MergeConfig.ModuleSpec m : cfg.modules().values()) {
                if (m.parameters() != null) b.add(m.parameters());
                if (m.models() != null) for (MergeConfig.ModelEntry e : m.models()) if (e.parameters() != null) b.add(e.parameters());
                if (m.slices() != null) for (MergeConfig.OutputSlice s : m.slices()) {
                    if (s.parameters() != null) b.add(s.parameters());
                    for (MergeConfig.InputSlice i : s.sources()) if (i.parameters() != null) b.add(i.parameters());
                }
            }
        }
        return b;
    }
}
