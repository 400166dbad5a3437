package org.mergeengine.plan;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.mergeengine.config.ConfigException;
import org.mergeengine.config.ModelRef;
import org.mergeengine.formats.ModelFolder;

/**
 * Resolves references to local folders. A relative path is looked up first against the working
 * directory (as mergekit does), then against the config file's folder. Each folder is opened once
 * and shared by every reference to it.
 */
public final class LocalModelResolver implements ModelResolver {
    private final List<Path> searchDirs;
    private final Map<Path, ModelFolder> opened = new LinkedHashMap<>();

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
            throw new ConfigException(yamlPath, "'" + ref + "': applying LoRA adapters (model+adapter) is not supported yet; merge the adapter into the model first");
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
    }
}
