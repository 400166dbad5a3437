package org.mergeengine.config;

import java.util.List;

/**
 * A parameter setting: a number, a gradient (a list of numbers interpolated over the layers of a
 * slice), or a list of {filter, value} entries where the first filter found in the tensor name wins.
 */
public sealed interface ParamValue {

    /** The value for a tensor at layer position {@code t} in [0, 1]; null when no filter matches. */
    Double evaluate(String tensorName, double t);

    record Scalar(double value) implements ParamValue {
        public Double evaluate(String tensorName, double t) {
            return value;
        }
    }

    record Gradient(double[] values) implements ParamValue {
        public Double evaluate(String tensorName, double t) {
            int m = values.length;
            if (m == 1) return values[0];
            double s = t * (m - 1);
            int i0 = (int) Math.floor(s);
            if (i0 < 0) i0 = 0;
            if (i0 > m - 1) i0 = m - 1;
            int i1 = Math.min(m - 1, i0 + 1);
            double f = s - i0;
            return (1 - f) * values[i0] + f * values[i1];
        }
    }

    record Filtered(String filter, ParamValue value) {
        boolean matches(String tensorName) {
            return filter == null || filter.equals("*") || tensorName.contains(filter);
        }
    }

    record Conditional(List<Filtered> entries) implements ParamValue {
        public Double evaluate(String tensorName, double t) {
            for (Filtered e : entries) {
                if (e.matches(tensorName)) return e.value().evaluate(tensorName, t);
            }
            return null;
        }
    }
}
