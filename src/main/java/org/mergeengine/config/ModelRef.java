package org.mergeengine.config;

/**
 * A model reference, mergekit's {@code path[@revision][+lora_path[@revision]]}. The path is a local
 * folder when one exists, otherwise a hub repository id.
 */
public record ModelRef(String path, String revision, String loraPath, String loraRevision) {

    public static ModelRef parse(String text, String yamlPath) {
        if (text == null || text.isBlank()) throw new ConfigException(yamlPath, "model reference is empty");
        String[] parts = text.split("\\+", -1);
        if (parts.length > 2) {
            throw new ConfigException(yamlPath, "cannot parse model reference '" + text + "': expected path[@revision][+lora_path[@revision]] with at most one '+'");
        }
        String[] m = splitRev(parts[0], text, yamlPath);
        String[] l = parts.length == 2 ? splitRev(parts[1], text, yamlPath) : new String[] {null, null};
        return new ModelRef(m[0], m[1], l[0], l[1]);
    }

    private static String[] splitRev(String chunk, String whole, String yamlPath) {
        String[] p = chunk.split("@", -1);
        if (p.length > 2) throw new ConfigException(yamlPath, "cannot parse model reference '" + whole + "': more than one '@' in '" + chunk + "'");
        if (p[0].isBlank()) throw new ConfigException(yamlPath, "cannot parse model reference '" + whole + "': empty path");
        if (p.length == 2 && p[1].isBlank()) throw new ConfigException(yamlPath, "cannot parse model reference '" + whole + "': empty revision after '@'");
        return new String[] {p[0].trim(), p.length == 2 ? p[1].trim() : null};
    }

    public boolean hasLora() {
        return loraPath != null;
    }

    /** The model without its adapter. */
    public ModelRef withoutLora() {
        return new ModelRef(path, revision, null, null);
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder(path);
        if (revision != null) sb.append('@').append(revision);
        if (loraPath != null) {
            sb.append('+').append(loraPath);
            if (loraRevision != null) sb.append('@').append(loraRevision);
        }
        return sb.toString();
    }
}
