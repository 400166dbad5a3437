package org.mergeengine.plan;

import org.mergeengine.config.ModelRef;
import org.mergeengine.formats.ModelFolder;

/** Turns a model reference into an opened local model folder (a local path, later a hub download). */
public interface ModelResolver extends AutoCloseable {
    ModelFolder resolve(ModelRef ref, String yamlPath);

    @Override
    default void close() {}
}
