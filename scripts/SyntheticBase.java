import java.nio.file.Path;
import org.mergeengine.formats.DType;
import org.mergeengine.tools.SyntheticModel;

/**
 * Writes a synthetic 7B-shaped Llama base (32 layers, hidden 4096, intermediate 11008, 32 query and
 * 8 key/value heads, vocabulary 32000; random bf16 weights, about 13.5 GB in 2 GB shards) for
 * memory checks of the layer-streamed forward pass.
 *
 * usage: java -cp merge-engine.jar scripts/SyntheticBase.java OUT_DIR [LAYERS]
 */
public class SyntheticBase {
    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: SyntheticBase OUT_DIR [LAYERS]");
            System.exit(2);
        }
        int layers = args.length > 1 ? Integer.parseInt(args[1]) : 32;
        SyntheticModel.Spec spec = new SyntheticModel.Spec(4096, 11008, layers, 32000, 32, 8, false);
        SyntheticModel.write(Path.of(args[0]), spec, DType.BF16, 7, 7, 0, 2_000_000_000L);
    }
}
