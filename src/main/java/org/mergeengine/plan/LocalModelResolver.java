package org.mergeengine.plan;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.MergeConfig;
import org.mergeengine.config.ModelRef;
import org.mergeengine.config.Names;
import org.mergeengine.formats.LoraAdapter;
import org.mergeengine.formats.ModelFolder;

/**
 * Resolves references to local folders. A relative path is looked up first against the working
 * directory (as mergekit does), then against the config file's folder. Each folder is opened once
 * and shared by every reference to it.
 */
public final class LocalModelResolver implements ModelResolver {
    private final List<Path> searchDirs;
    private final Map<Path, ModelFolder> opened = new LinkedHashMap<>();
    private final Map<Path, LoraAdapter> adapters = new LinkedHashMap<>();
    private final Map<ModelRef, ModelFolder> adapted = new LinkedHashMap<>();

    public LocalModelResolver(List<Path> searchDirs) {
        this.searchDirs = new ArrayList<>(searchDirs);
    }

    public Path locate(ModelRef ref) {
        Path p = expandHome(ref.path());
        if (p.isAbsolute()) return Files.isDirectory(p) ? p.normalize() : null;
        for (Path d : searchDirs) {
            Path c = d.resolve(p).toAbsolutePath().normalize();
            if (Files.isDirectory(c)) return c;
        }
        return null;
    }

    @Override
    public synchronized ModelFolder resolve(ModelRef ref, String yamlPath) {
        if (ref.hasLora()) {
            ModelFolder cached = adapted.get(ref);
            if (cached != null) return cached;
            ModelFolder base = resolve(ref.withoutLora(), yamlPath);
            ModelRef loraRef = new ModelRef(ref.loraPath(), ref.loraRevision(), null, null);
            Path adir = locate(loraRef);
            if (adir == null) {
                throw new ConfigException(yamlPath, "adapter '" + ref.loraPath() + "' of '" + ref + "' is not a folder (looked in " + searchDirs + ")");
            }
            if (ref.loraRevision() != null) {
                throw new ConfigException(yamlPath, "'" + ref + "': a revision (@" + ref.loraRevision() + ") only applies to hub adapters, but " + adir + " is a local folder");
            }
            LoraAdapter a = adapters.computeIfAbsent(adir, LoraAdapter::open);
            ModelFolder m = base.withAdapter(a);
            adapted.put(ref, m);
            return m;
        }
        Path dir = locate(ref);
        if (dir == null) {
            checkPath(ref, yamlPath);
            throw new ConfigException(yamlPath, "model '" + ref.path() + "' is not a folder (looked in " + searchDirs + ")");
        }
        if (ref.revision() != null) {
            throw new ConfigException(yamlPath, "'" + ref + "': a revision (@" + ref.revision() + ") only applies to hub models, but " + dir + " is a local folder");
        }
        return opened.computeIfAbsent(dir, ModelFolder::open);
    }

    /** {@code ~} and {@code ~/...} as a shell would read them, from $HOME. */
    static Path expandHome(String path) {
        if (path.equals("~") || path.startsWith("~/")) {
            String home = System.getenv().getOrDefault("HOME", System.getProperty("user.home"));
            return Path.of(home + path.substring(1));
        }
        return Path.of(path);
    }

    /**
     * True when a reference is meant as a local folder rather than a hub repository: it starts with
     * {@code .}, {@code /} or {@code ~}, or its parent folder exists here ({@code models/ft1} beside
     * a {@code models} folder).
     */
    public boolean looksLikePath(String ref) {
        if (ref.startsWith(".") || ref.startsWith("/") || ref.startsWith("~") || ref.contains("\\")) return true;
        int slash = ref.lastIndexOf('/');
        return slash > 0 && parentOf(ref) != null;
    }

    /** The existing folder a path-like reference's parent names, or null. */
    private Path parentOf(String ref) {
        int slash = ref.lastIndexOf('/');
        if (slash <= 0) return null;
        Path parent = expandHome(ref.substring(0, slash));
        if (parent.isAbsolute()) return Files.isDirectory(parent) ? parent : null;
        for (Path d : searchDirs) {
            Path c = d.resolve(parent).toAbsolutePath().normalize();
            if (Files.isDirectory(c)) return c;
        }
        return null;
    }

    /**
     * Fails at once, naming the YAML path, when a reference that looks like a path names no folder,
     * instead of taking it for a hub repository and waiting on the network.
     */
    public void checkPath(ModelRef ref, String yamlPath) {
        checkOne(ref.path(), yamlPath);
        if (ref.hasLora()) checkOne(ref.loraPath(), yamlPath);
    }

    private void checkOne(String path, String yamlPath) {
        if (!looksLikePath(path) || locate(new ModelRef(path, null, null, null)) != null) return;
        String hint = "";
        int slash = path.lastIndexOf('/');
        if (slash > 0) {
            // Folders beside the one meant, in every place the reference is looked up: the closest is the likely intent.
            Path parent = expandHome(path.substring(0, slash));
            List<String> siblings = new ArrayList<>();
            for (Path d : parent.isAbsolute() ? List.of(parent) : searchDirs.stream().map(x -> x.resolve(parent)).toList()) {
                if (!Files.isDirectory(d)) continue;
                try (Stream<Path> s = Files.list(d)) {
                    s.filter(Files::isDirectory).forEach(x -> siblings.add(x.getFileName().toString()));
                } catch (IOException e) {
                    // no listing, no suggestion from there
                }
            }
            hint = Names.suggestion(path.substring(slash + 1), siblings);
        }
        throw new ConfigException(yamlPath, "no such folder: '" + path + "'" + hint + " (looked in " + (Path.of(path).isAbsolute() || path.startsWith("~")
                ? expandHome(path).toString() : searchDirs.toString()) + "); a local path is never looked up on the hub");
    }

    /** {@link #checkPath} for every model the config names, before anything is opened or fetched. */
    public void checkPaths(MergeConfig cfg) {
        if (cfg.models() != null) for (MergeConfig.ModelEntry m : cfg.models()) checkPath(m.model(), m.yamlPath() + ".model");
        if (cfg.slices() != null) {
            for (MergeConfig.OutputSlice s : cfg.slices()) {
                for (MergeConfig.InputSlice i : s.sources()) checkPath(i.model(), i.yamlPath() + ".model");
                if (s.baseModel() != null) checkPath(s.baseModel(), s.yamlPath() + ".base_model");
            }
        }
        if (cfg.baseModel() != null) checkPath(cfg.baseModel(), "base_model");
        if (cfg.tokenizer() != null && cfg.tokenizer().sourceModel() != null) checkPath(cfg.tokenizer().sourceModel(), cfg.tokenizer().yamlPath());
    }

    @Override
    public synchronized void close() {
        opened.values().forEach(ModelFolder::close);
        opened.clear();
        adapters.values().forEach(LoraAdapter::close);
        adapters.clear();
        adapted.clear();
    }
}
