package org.mergeengine.methods;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.Names;
import org.mergeengine.methods.TaskArithmetic.Sparsifier;

/** Maps mergekit's method names to their implementations. */
public final class MethodRegistry {
    private static final Map<String, MergeMethod> METHODS = new LinkedHashMap<>();

    static {
        register(new Linear());
        register(new TaskArithmetic("task_arithmetic", Sparsifier.NONE, false, false, false));
        register(new TaskArithmetic("ties", Sparsifier.MAGNITUDE, true, true, false));
        register(new TaskArithmetic("dare_ties", Sparsifier.RANDOM, true, false, true));
        register(new TaskArithmetic("dare_linear", Sparsifier.RANDOM, false, false, true));
        register(new TaskArithmetic("breadcrumbs", Sparsifier.OUTLIERS, false, false, false));
        register(new TaskArithmetic("breadcrumbs_ties", Sparsifier.OUTLIERS, true, false, false));
        register(new TaskArithmetic("della", Sparsifier.DELLA, true, true, true));
        register(new TaskArithmetic("della_linear", Sparsifier.DELLA, false, false, true));
        register(new Slerp());
        register(new NuSlerp());
        register(new MultiSlerp());
        register(new Karcher());
        register(new ModelStock());
        register(new Sce());
        register(new Ram(false));
        register(new Ram(true));
        register(new NearSwap());
        register(new ArceeFusion());
        register(new Passthrough());
    }

    private MethodRegistry() {}

    static void register(MergeMethod m) {
        METHODS.put(m.name(), m);
    }

    /** Takes a method out again (a test's own method, once the test is done). */
    static void unregister(String name) {
        METHODS.remove(name);
    }

    public static Map<String, MergeMethod> all() {
        return Collections.unmodifiableMap(METHODS);
    }

    public static MergeMethod get(String name, String yamlPath) {
        MergeMethod m = METHODS.get(name);
        if (m != null) return m;
        throw new ConfigException(yamlPath, "unknown merge method '" + name + "'" + Names.suggestion(name, METHODS.keySet())
                + "; available: " + String.join(", ", METHODS.keySet()));
    }
}
