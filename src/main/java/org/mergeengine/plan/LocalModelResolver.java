package org.mergeengine.plan;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.ModelRef;
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
        Path p = Path.of(ref.path());
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
            String hint = ref.path().contains("/") && !ref.path().startsWith("/") && !ref.path().startsWith(".")
                    ? "; it looks like a hub repository id, and downloading from the hub is not supported yet: download it and give its folder"
                    : "";
            throw new ConfigException(yamlPath, "model '" + ref.path() + "' is not a folder (looked in " + searchDirs + ")" + hint);
        }
        if (ref.revision() != null) {
            throw new ConfigException(yamlPath, "'" + ref + "': a revision (@" + ref.revision() + ") only applies to hub models, but " + dir + " is a local folder");
        }
        return opened.computeIfAbsent(dir, ModelFolder::open);
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
