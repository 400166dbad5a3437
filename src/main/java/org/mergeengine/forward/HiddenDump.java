package org.mergeengine.forward;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.List;
import org.mergeengine.formats.Json;

/**
 * {@code java -cp merge-engine.jar org.mergeengine.forward.HiddenDump MODEL IDS.json OUT.json [--last]}:
 * the layer inputs and next-token log-probabilities of one batch
 * ({@code {"ids": [[..]], "mask": [[..]]}}), as JSON, for comparing the forward pass with another
 * implementation by hand. {@code --last}: only each row's last position, and no log-probabilities.
 */
public final class HiddenDump {
    private HiddenDump() {}

    public static void main(String[] args) throws Exception {
        boolean last = args.length == 4 && args[3].equals("--last");
        if (args.length != 3 && !last) {
            System.err.println("usage: HiddenDump MODEL IDS.json OUT.json [--last]");
            System.exit(2);
        }
        JsonNode in = Json.read(Path.of(args[1]));
        int[][] ids = matrix(in.get("ids")), mask = in.has("mask") ? matrix(in.get("mask")) : null;
        Batch b = mask == null ? Batch.unpadded(ids) : new Batch(ids, mask);
        ObjectNode out = Json.MAPPER.createObjectNode();
        ArrayNode layers = out.putArray("hidden");
        try (DecoderForward f = DecoderForward.open(Path.of(args[0]), Runtime.getRuntime().availableProcessors())) {
            f.layerInputs(List.of(b), (batch, l, h) -> {
                ArrayNode layer = layers.addArray();
                for (float[][] row : h) {
                    ArrayNode r = layer.addArray();
                    for (float[] pos : last ? new float[][] {row[row.length - 1]} : row) {
                        ArrayNode p = r.addArray();
                        for (float v : pos) p.add(v);
                    }
                }
            });
            if (last) {
                Json.write(Path.of(args[2]), out);
                return;
            }
            ArrayNode lp = out.putArray("logprobs");
            for (double[] row : f.nextTokenLogProbs(List.of(b))[0]) {
                ArrayNode r = lp.addArray();
                for (double v : row) {
                    if (Double.isNaN(v)) r.addNull();
                    else r.add(v);
                }
            }
        }
        Json.write(Path.of(args[2]), out);
    }

    private static int[][] matrix(JsonNode n) {
        int[][] m = new int[n.size()][];
        for (int i = 0; i < n.size(); i++) {
            m[i] = new int[n.get(i).size()];
            for (int j = 0; j < m[i].length; j++) m[i][j] = n.get(i).get(j).asInt();
        }
        return m;
    }
}
