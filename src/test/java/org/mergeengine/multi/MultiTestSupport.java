package org.mergeengine.multi;

/** A 4-stage file for tests: a and b from the models, c from a and b, the final merge from c. */
public final class MultiTestSupport {
    private MultiTestSupport() {}

    /** {@code m} prefixes the model names (a folder path ending in "/", or "org/" for hub repositories). */
    public static String dag(String m) {
        return String.join("\n",
                "name: a",
                "merge_method: linear",
                "models:",
                "  - {model: " + m + "base, parameters: {weight: 0.5}}",
                "  - {model: " + m + "ft1, parameters: {weight: 0.5}}",
                "---",
                "name: b",
                "merge_method: task_arithmetic",
                "base_model: " + m + "base",
                "models:",
                "  - {model: " + m + "ft2, parameters: {weight: 0.8}}",
                "---",
                "name: c",
                "merge_method: slerp",
                "base_model: a",
                "parameters: {t: 0.4}",
                "models:",
                "  - model: a",
                "  - model: b",
                "---",
                "merge_method: ties",
                "base_model: " + m + "base",
                "models:",
                "  - {model: c, parameters: {weight: 1, density: 0.7}}",
                "  - {model: " + m + "ft1, parameters: {weight: 0.5, density: 0.5}}",
                "");
    }
}
