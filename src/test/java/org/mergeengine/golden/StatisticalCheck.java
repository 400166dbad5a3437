package org.mergeengine.golden;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.mergeengine.TestSupport;
import org.mergeengine.formats.ModelFolder;

/**
 * The statistical rule for DARE and DELLA (random masks): keep fractions on positions only one
 * fine-tune moved, the L1 rescale factor, and that every element is the result of some keep/drop
 * choice, as the golden README describes.
 */
final class StatisticalCheck {
    private StatisticalCheck() {}

    static void run(Path caseDir, JsonNode check, ModelFolder got) {
        double rtol = check.get("effective_rtol").asDouble();
        JsonNode g = check.get("global_parameters");
        double lambda = g.get("lambda").asDouble();
        boolean normalize = g.get("normalize").asBoolean();
        boolean della = g.get("sparsification").asText().startsWith("della");
        List<String> models = new ArrayList<>();
        Map<String, double[]> params = new LinkedHashMap<>(); // density, weight, epsilon
        for (Iterator<Map.Entry<String, JsonNode>> it = check.get("model_parameters").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            models.add(e.getKey());
            JsonNode p = e.getValue();
            params.put(e.getKey(), new double[] {p.get("density").asDouble(), p.get("weight").asDouble(),
                    p.has("epsilon") ? p.get("epsilon").asDouble() : 0});
        }
        int n = models.size();
        double[] aggKept = new double[n], aggExp = new double[n], aggVar = new double[n];
        try (ModelFolder base = ModelFolder.open(caseDir.resolve("models/base"))) {
            List<ModelFolder> fts = new ArrayList<>();
            for (String m : models) fts.add(ModelFolder.open(caseDir.resolve(m)));
            try {
                for (String name : base.tensors().keySet()) {
                    float[] b = TestSupport.floats(base, name), out = TestSupport.floats(got, name);
                    long[] shape = base.tensor(name).info().shape();
                    int row = shape.length >= 2 ? (int) shape[shape.length - 1] : b.length;
                    double[][] d = new double[n][b.length];
                    for (int k = 0; k < n; k++) {
                        float[] x = TestSupport.floats(fts.get(k), name);
                        for (int i = 0; i < b.length; i++) d[k][i] = x[i] - b[i];
                    }
                    double meanBase = 0;
                    for (float v : b) meanBase += Math.abs(v);
                    meanBase /= b.length;
                    double[] c = new double[n];
                    for (int k = 0; k < n; k++) {
                        double[] pr = params.get(models.get(k));
                        double[] pKeep = keepProbabilities(d[k], row, pr[0], pr[2], della);
                        List<Double> ratios = new ArrayList<>();
                        double kept = 0, expKept = 0, var = 0, l1All = 0, l1KeptSolo = 0, l1Undetermined = 0;
                        for (int i = 0; i < b.length; i++) {
                            l1All += Math.abs(d[k][i]);
                            if (d[k][i] == 0) continue;
                            boolean solo = true;
                            for (int o = 0; o < n; o++) if (o != k && d[o][i] != 0) solo = false;
                            if (!solo) {
                                l1Undetermined += Math.abs(d[k][i]);
                                continue;
                            }
                            double ratio = (out[i] - b[i]) / (lambda * d[k][i]);
                            boolean keep = ratio > 0.5;
                            expKept += pKeep[i];
                            var += pKeep[i] * (1 - pKeep[i]);
                            if (keep) {
                                kept++;
                                ratios.add(ratio);
                                l1KeptSolo += Math.abs(d[k][i]);
                            } else if (Math.abs(out[i] - b[i]) > rtol * Math.abs(b[i]) + rtol * meanBase) {
                                fail(name + "[" + i + "]: a dropped solo entry must equal the base, got " + out[i] + " vs " + b[i]);
                            }
                        }
                        if (var > 0) {
                            double z = (kept - expKept) / Math.sqrt(var);
                            assertTrue(Math.abs(z) <= 6, name + " " + models.get(k) + ": keep fraction z = " + z);
                        }
                        aggKept[k] += kept;
                        aggExp[k] += expKept;
                        aggVar[k] += var;
                        if (ratios.isEmpty()) {
                            c[k] = Double.NaN;
                            continue;
                        }
                        double[] rs = ratios.stream().mapToDouble(Double::doubleValue).sorted().toArray();
                        c[k] = rs[rs.length / 2];
                        double hi = l1KeptSolo < 1e-7 ? 1 : l1All / l1KeptSolo;
                        double lo = l1KeptSolo + l1Undetermined < 1e-7 ? 1 : l1All / (l1KeptSolo + l1Undetermined);
                        assertTrue(c[k] >= lo * (1 - 1e-4) && c[k] <= hi * (1 + 1e-4),
                                name + " " + models.get(k) + ": rescale " + c[k] + " outside the L1-ratio bounds [" + lo + ", " + hi + "]");
                        if (!della) {
                            double rho = params.get(models.get(k))[0];
                            double sumSq = 0;
                            for (double v : d[k]) sumSq += v * v;
                            double tol = 6 * Math.sqrt(rho * (1 - rho) * sumSq) / l1All + 0.01;
                            assertTrue(Math.abs(1 / c[k] - rho) <= tol, name + ": 1/c = " + 1 / c[k] + " far from density " + rho);
                        }
                    }
                    everyElement(name, b, d, out, c, models, params, lambda, normalize, rtol, meanBase);
                }
            } finally {
                fts.forEach(ModelFolder::close);
            }
        }
        for (int k = 0; k < n; k++) {
            double z = (aggKept[k] - aggExp[k]) / Math.sqrt(aggVar[k]);
            assertTrue(Math.abs(z) <= 5, models.get(k) + ": aggregate keep fraction z = " + z);
        }
    }

    /** DARE: density everywhere. DELLA: density - eps + 2 eps (rank-1)/(L-1) by |delta| rank within the row. */
    static double[] keepProbabilities(double[] d, int row, double rho, double eps, boolean della) {
        double[] p = new double[d.length];
        if (!della) {
            Arrays.fill(p, rho);
            return p;
        }
        for (int r0 = 0; r0 < d.length; r0 += row) {
            Integer[] idx = new Integer[row];
            for (int j = 0; j < row; j++) idx[j] = r0 + j;
            Arrays.sort(idx, (a, b2) -> Double.compare(Math.abs(d[a]), Math.abs(d[b2])));
            for (int rank = 0; rank < row; rank++) {
                p[idx[rank]] = row == 1 ? rho : rho - eps + 2 * eps * rank / (double) (row - 1);
            }
        }
        return p;
    }

    static void everyElement(String name, float[] b, double[][] d, float[] out, double[] c, List<String> models,
                             Map<String, double[]> params, double lambda, boolean normalize, double rtol, double meanBase) {
        int n = d.length;
        for (int i = 0; i < b.length; i++) {
            boolean ok = false;
            for (int mask = 0; mask < (1 << n) && !ok; mask++) {
                double s = 0;
                double[] contrib = new double[n];
                boolean usable = true;
                for (int k = 0; k < n; k++) {
                    if ((mask & (1 << k)) == 0 || d[k][i] == 0) continue;
                    if (Double.isNaN(c[k])) {
                        usable = false;
                        break;
                    }
                    contrib[k] = params.get(models.get(k))[1] * c[k] * d[k][i];
                    s += contrib[k];
                }
                if (!usable) continue;
                double m = 0, div = 0;
                for (int k = 0; k < n; k++) {
                    double v = contrib[k];
                    if (s >= 0 ? v > 0 : v < 0) {
                        m += v;
                        div += params.get(models.get(k))[1];
                    }
                }
                double val = b[i] + lambda * (normalize ? m / (div == 0 ? 1 : div) : m);
                ok = Math.abs(out[i] - val) <= rtol * Math.abs(val) + rtol * meanBase;
            }
            boolean anyUnknown = false;
            for (int k = 0; k < n; k++) anyUnknown |= Double.isNaN(c[k]) && d[k][i] != 0;
            if (!ok && !anyUnknown) fail(name + "[" + i + "]: " + out[i] + " is not the result of any keep/drop choice");
        }
    }
}
