package org.mergeengine.config;

import org.mergeengine.MergeException;

/** A mistake in a merge config: the message starts with the YAML path of the culprit. */
public class ConfigException extends MergeException {
    private final String yamlPath;

    public ConfigException(String yamlPath, String message) {
        super(Kind.USER, (yamlPath == null || yamlPath.isEmpty() ? "" : yamlPath + ": ") + message);
        this.yamlPath = yamlPath;
    }

    public String yamlPath() {
        return yamlPath;
    }
}
