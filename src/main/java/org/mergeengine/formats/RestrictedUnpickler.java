package org.mergeengine.formats;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reads the pickle of a torch.save state dict without executing anything. Only the opcodes a
 * state dict uses are understood, and only these globals may be named: collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2 / _rebuild_parameter(_with_state) and the torch.*Storage types.
 * Anything else (os.system, say) is refused with an error naming it. The result is where each
 * tensor's bytes are (storage key, offset, shape), never the bytes themselves.
 */
public final class RestrictedUnpickler {
    public record Storage(DType dtype, String key) {}

    public record TensorRef(Storage storage, long offset, long[] shape) {}

    record Global(String module, String name) {}

    record Tuple(Object[] items) {}

    private static final Object MARK = new Object();

    static final Map<String, DType> STORAGES = Map.of("FloatStorage", DType.F32, "HalfStorage", DType.F16, "BFloat16Storage", DType.BF16,
            "DoubleStorage", DType.F64, "LongStorage", DType.I64, "IntStorage", DType.I32, "ShortStorage", DType.I16,
            "CharStorage", DType.I8, "ByteStorage", DType.U8, "BoolStorage", DType.BOOL);
    static final Set<String> FUNCTIONS = Set.of("collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
            "torch._utils._rebuild_parameter_with_state");

    private final byte[] b;
    private final Path path;
    private int pos;
    private final List<Object> stack = new ArrayList<>();
    private final Map<Integer, Object> memo = new HashMap<>();

    /**
     * Memo entries a state dict may make: a few per tensor, so this is room for hundreds of
     * thousands of tensors, while a file of nothing but MEMOIZE opcodes stops long before the heap.
     */
    static final int MAX_MEMO = 1 << 20;
    /** Nesting of a dict key (tuples in tuples); a state dict's keys are plain strings. */
    static final int MAX_KEY_DEPTH = 32;

    private RestrictedUnpickler(byte[] b, Path path) {
        this.b = b;
        this.path = path;
    }

    /** The tensors of a pickled state dict (a top-level "state_dict" entry is unwrapped). */
    public static Map<String, TensorRef> stateDict(byte[] pickle, Path path) {
        RestrictedUnpickler u = new RestrictedUnpickler(pickle, path);
        Object top;
        try {
            top = u.run();
        } catch (FormatException e) {
            throw e;
        } catch (RuntimeException | StackOverflowError e) {
            // every read is bounds-checked; this is the last guard, so that no crafted file ends in a stack trace
            throw u.bad("damaged pickle (" + e.getClass().getSimpleName() + ")");
        }
        if (top instanceof Map<?, ?> m && m.get("state_dict") instanceof Map<?, ?> inner) top = inner;
        if (!(top instanceof Map<?, ?> m)) throw new FormatException(path + ": the pickle is not a state dict (a mapping of names to tensors)");
        Map<String, TensorRef> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : m.entrySet()) {
            if (e.getKey() instanceof String k && e.getValue() instanceof TensorRef t) out.put(k, t);
            else if (e.getKey() instanceof String k) throw new FormatException(path + ": entry '" + k + "' of the state dict is not a tensor");
        }
        return out;
    }

    private FormatException bad(String why) {
        return new FormatException(path + ": unsafe or damaged pickle at byte " + pos + ": " + why);
    }

    private int u8() {
        if (pos >= b.length) throw bad("unexpected end");
        return b[pos++] & 0xff;
    }

    private int le(int n) {
        if (n > b.length - pos) throw bad("unexpected end");
        int v = 0;
        for (int i = 0; i < n; i++) v |= (b[pos + i] & 0xff) << (8 * i);
        pos += n;
        return v;
    }

    private String text(int n) {
        if (n < 0 || n > b.length - pos) throw bad("string of " + Integer.toUnsignedString(n) + " bytes runs past the end");
        String s = new String(b, pos, n, StandardCharsets.UTF_8);
        pos += n;
        return s;
    }

    private String line() {
        int start = pos;
        while (pos < b.length && b[pos] != '\n') pos++;
        if (pos >= b.length) throw bad("unterminated line");
        return new String(b, start, pos++ - start, StandardCharsets.US_ASCII);
    }

    private void push(Object o) {
        if (stack.size() > 1_000_000) throw bad("stack too deep");
        stack.add(o);
    }

    private Object pop() {
        if (stack.isEmpty() || stack.get(stack.size() - 1) == MARK) throw bad("stack underflow");
        return stack.remove(stack.size() - 1);
    }

    private Object top() {
        if (stack.isEmpty()) throw bad("stack underflow");
        return stack.get(stack.size() - 1);
    }

    private List<Object> popMark() {
        int i = stack.size() - 1;
        while (i >= 0 && stack.get(i) != MARK) i--;
        if (i < 0) throw bad("no mark");
        List<Object> items = new ArrayList<>(stack.subList(i + 1, stack.size()));
        stack.subList(i, stack.size()).clear();
        return items;
    }

    private void memoize(int key) {
        if (memo.size() >= MAX_MEMO && !memo.containsKey(key)) throw bad("more than " + MAX_MEMO + " memo entries, more than a state dict makes");
        memo.put(key, top());
    }

    @SuppressWarnings("unchecked")
    private Object run() {
        while (true) {
            int op = u8();
            switch (op) {
                case 0x80 -> u8(); // PROTO
                case 0x95 -> skip(8); // FRAME
                case '(' -> push(MARK);
                case '.' -> {
                    return pop(); // STOP
                }
                case 'N' -> push(null);
                case 0x88 -> push(Boolean.TRUE);
                case 0x89 -> push(Boolean.FALSE);
                case 'K' -> push((long) u8());
                case 'M' -> push((long) le(2));
                case 'J' -> push((long) le(4));
                case 0x8a -> { // LONG1
                    int n = u8();
                    if (n > 8) throw bad("integer too large");
                    if (n > b.length - pos) throw bad("LONG1 of " + n + " bytes runs past the end");
                    long v = 0;
                    for (int i = 0; i < n; i++) v |= (long) (b[pos + i] & 0xff) << (8 * i);
                    if (n > 0 && n < 8 && (b[pos + n - 1] & 0x80) != 0) v -= 1L << (8 * n);
                    pos += n;
                    push(v);
                }
                case 'G' -> { // BINFLOAT, big-endian
                    if (8 > b.length - pos) throw bad("unexpected end");
                    push(ByteBuffer.wrap(b, pos, 8).order(ByteOrder.BIG_ENDIAN).getDouble());
                    pos += 8;
                }
                case 'X' -> push(text(le(4)));
                case 0x8c -> push(text(u8())); // SHORT_BINUNICODE
                case ')' -> push(new Tuple(new Object[0]));
                case 't' -> push(new Tuple(popMark().toArray()));
                case 0x85 -> push(new Tuple(new Object[] {pop()}));
                case 0x86 -> {
                    Object y = pop(), x = pop();
                    push(new Tuple(new Object[] {x, y}));
                }
                case 0x87 -> {
                    Object z = pop(), y = pop(), x = pop();
                    push(new Tuple(new Object[] {x, y, z}));
                }
                case ']' -> push(new ArrayList<>());
                case '}' -> push(new LinkedHashMap<>());
                case 'a' -> {
                    Object v = pop();
                    if (!(top() instanceof List<?> l)) throw bad("APPEND to a non-list");
                    ((List<Object>) l).add(v);
                }
                case 'e' -> {
                    List<Object> items = popMark();
                    if (!(top() instanceof List<?> l)) throw bad("APPENDS to a non-list");
                    ((List<Object>) l).addAll(items);
                }
                case 's' -> {
                    Object v = pop(), k = pop();
                    if (!(top() instanceof Map<?, ?> m)) throw bad("SETITEM on a non-dict");
                    ((Map<Object, Object>) m).put(key(k), v);
                }
                case 'u' -> {
                    List<Object> items = popMark();
                    if (!(top() instanceof Map<?, ?> m) || items.size() % 2 != 0) throw bad("SETITEMS on a non-dict");
                    for (int i = 0; i < items.size(); i += 2) ((Map<Object, Object>) m).put(key(items.get(i)), items.get(i + 1));
                }
                case 'q' -> memoize(u8());
                case 'r' -> memoize(le(4));
                case 0x94 -> memoize(memo.size()); // MEMOIZE
                case 'h', 'j' -> {
                    int k = op == 'h' ? u8() : le(4);
                    if (!memo.containsKey(k)) throw bad("unknown memo " + k);
                    push(memo.get(k));
                }
                case 'c' -> { // GLOBAL: only the allow-listed names exist
                    String module = line(), name = line();
                    String full = module + "." + name;
                    boolean storage = module.equals("torch") && STORAGES.containsKey(name);
                    if (!storage && !FUNCTIONS.contains(full)) {
                        throw new FormatException(path + ": the pickle names the global '" + full + "', which is not tensor data; refusing to read it"
                                + " (only " + String.join(", ", FUNCTIONS) + " and torch storage types are allowed; nothing is ever executed)");
                    }
                    push(new Global(module, name));
                }
                case 'Q' -> push(persistent(pop())); // BINPERSID
                case 'R' -> {
                    Object args = pop(), fn = pop();
                    push(reduce(fn, args));
                }
                case 0x81 -> { // NEWOBJ
                    Object args = pop(), cls = pop();
                    push(reduce(cls, args));
                }
                case 'b' -> pop(); // BUILD: state of an OrderedDict or tensor (metadata): not needed
                default -> throw bad(String.format("opcode 0x%02x is not allowed in a state dict", op));
            }
        }
    }

    private void skip(int n) {
        if (n > b.length - pos) throw bad("unexpected end");
        pos += n;
    }

    /**
     * A dict key as Python would accept it: hashable, so no list or dict (a list that contains
     * itself, used as a key, would recurse without end in hashCode), and tuples nested only so deep.
     */
    private Object key(Object k) {
        checkHashable(k, 0);
        return k;
    }

    private void checkHashable(Object k, int depth) {
        if (depth > MAX_KEY_DEPTH) throw bad("a dict key nested more than " + MAX_KEY_DEPTH + " deep");
        if (k instanceof Tuple t) {
            for (Object o : t.items()) checkHashable(o, depth + 1);
        } else if (k instanceof List<?> || k instanceof Map<?, ?>) {
            throw bad("a " + (k instanceof List<?> ? "list" : "dict") + " used as a dict key (unhashable in Python)");
        }
    }

    private Storage persistent(Object pid) {
        if (!(pid instanceof Tuple t) || t.items().length < 5 || !"storage".equals(t.items()[0])
                || !(t.items()[1] instanceof Global g) || !(t.items()[2] instanceof String key)) {
            throw bad("persistent id is not a torch storage reference");
        }
        DType dt = STORAGES.get(g.name());
        if (dt == null) throw bad("unknown storage type " + g.name());
        if (!key.matches("[A-Za-z0-9_]+")) throw bad("storage key '" + key + "' is not a plain name");
        return new Storage(dt, key);
    }

    private Object reduce(Object fn, Object args) {
        if (!(fn instanceof Global g) || !(args instanceof Tuple t)) throw bad("call of a non-allowed object");
        Object[] a = t.items();
        switch (g.module() + "." + g.name()) {
            case "collections.OrderedDict":
                return new LinkedHashMap<>();
            case "torch._utils._rebuild_tensor_v2": {
                if (a.length < 4 || !(a[0] instanceof Storage s) || !(a[1] instanceof Long off) || !(a[2] instanceof Tuple size)
                        || !(a[3] instanceof Tuple stride)) {
                    throw bad("malformed _rebuild_tensor_v2 arguments");
                }
                long[] shape = longs(size), strides = longs(stride);
                if (shape.length != strides.length) throw bad("shape and stride differ in length");
                long expect = 1;
                for (int i = shape.length - 1; i >= 0; i--) {
                    if (shape[i] < 0) throw bad("negative dimension");
                    if (shape[i] != 1 && strides[i] != expect) {
                        throw bad("a non-contiguous tensor (stride " + java.util.Arrays.toString(strides) + " for shape " + java.util.Arrays.toString(shape)
                                + "); save it with .contiguous()");
                    }
                    expect *= shape[i];
                }
                return new TensorRef(s, off, shape);
            }
            case "torch._utils._rebuild_parameter":
            case "torch._utils._rebuild_parameter_with_state":
                if (a.length < 1 || !(a[0] instanceof TensorRef tr)) throw bad("malformed _rebuild_parameter arguments");
                return tr;
            default:
                throw bad("'" + g.module() + "." + g.name() + "' cannot be called");
        }
    }

    private long[] longs(Tuple t) {
        long[] v = new long[t.items().length];
        for (int i = 0; i < v.length; i++) {
            if (!(t.items()[i] instanceof Long l)) throw bad("a size or stride is not an integer");
            v[i] = l;
        }
        return v;
    }
}
