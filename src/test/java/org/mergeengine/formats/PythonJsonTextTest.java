package org.mergeengine.formats;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** config.json text as Python's json.dumps(indent=2) writes it (expected strings are Python's own output). */
class PythonJsonTextTest {
    @TempDir
    Path dir;

    @Test
    void floatsAreWrittenAsPythonsRepr() {
        assertEquals("1e-05", Json.pythonFloat(1e-5));
        assertEquals("0.0001", Json.pythonFloat(1e-4));
        assertEquals("10000.0", Json.pythonFloat(10000.0));
        assertEquals("1e+16", Json.pythonFloat(1e16));
        assertEquals("1234567890123456.0", Json.pythonFloat(1234567890123456.0));
        assertEquals("0.1", Json.pythonFloat(0.1));
        assertEquals("-2.5e-07", Json.pythonFloat(-2.5e-7));
        assertEquals("0.0", Json.pythonFloat(0.0));
        assertEquals("NaN", Json.pythonFloat(Double.NaN));
    }

    @Test
    void readAndWrittenBackTheTextIsUnchanged() throws Exception {
        String text = "{\n  \"a\": 1.0,\n  \"b\": 1e-05,\n  \"c\": 10000.0,\n  \"d\": 0.0,\n  \"e\": [],\n  \"f\": {},\n  \"g\": [\n    1,\n    [\n      2.50\n    ]\n  ],\n"
                + "  \"h\": \"caf\\u00e9 \\\"q\\\"\\n\\ud83d\\ude00\",\n  \"i\": null,\n  \"j\": false,\n  \"k\": -0.0,\n  \"l\": 1E+3,\n  \"m\": NaN\n}";
        Path f = Files.writeString(dir.resolve("config.json"), text);
        ObjectNode n = Json.readExactObject(f);
        assertEquals(text, Json.toPythonText(n));
        n.put("vocab_size", 12);
        n.put("x", 0.5);
        assertEquals(text.substring(0, text.length() - 2) + ",\n  \"vocab_size\": 12,\n  \"x\": 0.5\n}", Json.toPythonText(n));
    }
}
