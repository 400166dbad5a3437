package org.mergeengine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The packages of src/main/java depend on one another without cycles, so that each layer can be
 * read, tested and changed on its own. References are read from the sources: imports, static
 * imports and names written out in full.
 */
class PackageCyclesTest {
    private static final String ROOT = "org.mergeengine";
    private static final Pattern REF = Pattern.compile("\\borg\\.mergeengine\\.([a-z][a-z0-9_]*)\\.[A-Za-z]");

    /** Package → packages its sources name. */
    static Map<String, Set<String>> dependencies(Path src) throws IOException {
        Map<String, Set<String>> deps = new TreeMap<>();
        Path base = src.resolve(ROOT.replace('.', '/'));
        try (Stream<Path> files = Files.walk(base)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".java")).toList()) {
                Path rel = base.relativize(f.getParent());
                String pkg = rel.getNameCount() == 0 || rel.toString().isEmpty() ? "" : rel.getName(0).toString();
                Set<String> d = deps.computeIfAbsent(pkg, k -> new TreeSet<>());
                Matcher m = REF.matcher(Files.readString(f));
                while (m.find()) if (!m.group(1).equals(pkg)) d.add(m.group(1));
            }
        }
        return deps;
    }

    /** A cycle through the graph, as the packages along it, or an empty list. */
    static List<String> cycle(Map<String, Set<String>> deps) {
        Map<String, Integer> state = new TreeMap<>(); // 1: on the current path, 2: finished
        for (String start : deps.keySet()) {
            List<String> path = new ArrayList<>();
            List<String> found = visit(start, deps, state, path);
            if (!found.isEmpty()) return found;
        }
        return List.of();
    }

    private static List<String> visit(String p, Map<String, Set<String>> deps, Map<String, Integer> state, List<String> path) {
        Integer s = state.get(p);
        if (s != null && s == 2) return List.of();
        if (s != null && s == 1) {
            List<String> c = new ArrayList<>(path.subList(path.indexOf(p), path.size()));
            c.add(p);
            return c;
        }
        state.put(p, 1);
        path.add(p);
        for (String q : deps.getOrDefault(p, Set.of())) {
            List<String> c = visit(q, deps, state, path);
            if (!c.isEmpty()) return c;
        }
        path.remove(path.size() - 1);
        state.put(p, 2);
        return List.of();
    }

    @Test
    void mainPackagesHaveNoCycle() throws IOException {
        Map<String, Set<String>> deps = dependencies(Path.of("src/main/java"));
        assertTrue(deps.keySet().containsAll(Set.of("engine", "formats", "methods", "tensor", "cluster")), deps.keySet().toString());
        assertEquals(List.of(), cycle(deps), "package cycle; dependencies: " + deps);
    }

    @Test
    void theCheckFindsACycle(@TempDir Path dir) throws IOException {
        Path a = Files.createDirectories(dir.resolve("org/mergeengine/a")), b = Files.createDirectories(dir.resolve("org/mergeengine/b"));
        Files.writeString(a.resolve("A.java"), "package org.mergeengine.a;\nimport org.mergeengine.b.B;\nclass A {}\n");
        Files.writeString(b.resolve("B.java"), "package org.mergeengine.b;\nclass B { Object x = org.mergeengine.a.A.class; }\n");
        assertEquals(List.of("a", "b", "a"), cycle(dependencies(dir)));
    }
}
