package org.mergeengine.formats;

import java.util.Locale;

/** Tensor element types as safetensors names them, with the names mergekit configs use. */
public enum DType {
    F64("F64", 8, true, "float64"),
    F32("F32", 4, true, "float32"),
    F16("F16", 2, true, "float16"),
    BF16("BF16", 2, true, "bfloat16"),
    F8_E4M3("F8_E4M3", 1, true, "float8_e4m3fn"),
    F8_E5M2("F8_E5M2", 1, true, "float8_e5m2"),
    I64("I64", 8, false, "int64"),
    I32("I32", 4, false, "int32"),
    I16("I16", 2, false, "int16"),
    I8("I8", 1, false, "int8"),
    U8("U8", 1, false, "uint8"),
    BOOL("BOOL", 1, false, "bool");

    private final String safetensorsName;
    private final int size;
    private final boolean floating;
    private final String torchName;

    DType(String safetensorsName, int size, boolean floating, String torchName) {
        this.safetensorsName = safetensorsName;
        this.size = size;
        this.floating = floating;
        this.torchName = torchName;
    }

    public String safetensorsName() { return safetensorsName; }
    public int size() { return size; }
    public boolean isFloating() { return floating; }
    /** The name torch and config.json's torch_dtype use. */
    public String torchName() { return torchName; }

    public static DType fromSafetensors(String name) {
        for (DType d : values()) if (d.safetensorsName.equals(name)) return d;
        return null;
    }

    /** mergekit's accepted config names: bfloat16, float16, float32, int64, optionally prefixed "torch.". */
    public static DType fromConfigName(String name) {
        String n = name.trim().toLowerCase(Locale.ROOT);
        if (n.startsWith("torch.")) n = n.substring(6);
        switch (n) {
            case "bfloat16": return BF16;
            case "float16": case "half": return F16;
            case "float32": case "float": return F32;
            case "int64": return I64;
            default: return null;
        }
    }

    public static final String CONFIG_NAMES = "bfloat16, float16, float32, int64";

    /** torch's promotion between two float dtypes: equal stays, bf16 with f16 becomes f32, otherwise the wider. */
    public static DType promote(DType a, DType b) {
        if (a == b) return a;
        if (!a.floating && !b.floating) return a.size >= b.size ? a : b;
        if (!a.floating) return b;
        if (!b.floating) return a;
        if (a.size == b.size) return F32; // bf16 + f16, or the two f8 kinds
        return a.size > b.size ? a : b;
    }
}
