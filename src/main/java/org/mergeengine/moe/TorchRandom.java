package org.mergeengine.moe;

import java.util.Arrays;

/**
 * The random numbers of torch's default CPU generator, so that a seeded mergekit-moe run and this
 * one draw the same gates and the same expert noise: MT19937 seeded with the standard
 * {@code init_genrand}, uniforms from 24 bits of each 32-bit draw, and normals by torch's
 * vectorised Box-Muller over blocks of 16 with float32 Cephes-style log and sincos, whose
 * multiply-adds are fused where the compiled kernel fuses them.
 */
public final class TorchRandom {
    private static final int N = 624, M = 397;
    private final int[] mt;
    private int index;

    public TorchRandom(long seed) {
        mt = new int[N];
        mt[0] = (int) seed;
        for (int i = 1; i < N; i++) mt[i] = 1812433253 * (mt[i - 1] ^ (mt[i - 1] >>> 30)) + i;
        index = N;
    }

    private TorchRandom(int[] mt, int index) {
        this.mt = mt;
        this.index = index;
    }

    /** An independent generator in this one's current state. */
    public TorchRandom copy() {
        return new TorchRandom(mt.clone(), index);
    }

    private void twist() {
        for (int i = 0; i < N; i++) {
            int y = (mt[i] & 0x80000000) | (mt[(i + 1) % N] & 0x7fffffff);
            int v = mt[(i + M) % N] ^ (y >>> 1);
            if ((y & 1) != 0) v ^= 0x9908b0df;
            mt[i] = v;
        }
        index = 0;
    }

    /** The next 32-bit output, as an unsigned value in an int. */
    public int next32() {
        if (index >= N) twist();
        int y = mt[index++];
        y ^= y >>> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        y ^= y >>> 18;
        return y;
    }

    /** Skips {@code n} 32-bit outputs (no tempering: only the state advances). */
    public void skip(long n) {
        while (n > 0) {
            if (index >= N) twist();
            int k = (int) Math.min(n, N - index);
            index += k;
            n -= k;
        }
    }

    /** torch.rand's float32 element: 24 random bits over [0, 1). */
    public float uniform() {
        return (next32() & 0xFFFFFF) * 0x1.0p-24f;
    }

    /** {@code torch.rand(n)}. */
    public float[] rand(int n) {
        float[] d = new float[n];
        for (int i = 0; i < n; i++) d[i] = uniform();
        return d;
    }

    /** {@code torch.randn(n)} in float32 (n >= 16, the vectorised path). */
    public float[] randn(int n) {
        checkVectorised(n);
        float[] d = rand(n);
        for (int i = 0; i + 16 <= n; i += 16) boxMuller(d, i);
        if (n % 16 != 0) {
            for (int k = 0; k < 16; k++) d[n - 16 + k] = uniform();
            boxMuller(d, n - 16);
        }
        return d;
    }

    static void checkVectorised(long n) {
        if (n < 16) {
            throw new IllegalArgumentException("torch draws normals for tensors under 16 elements by another (double) path, not reproduced here; n = " + n);
        }
    }

    /** 32-bit draws a normal fill of {@code n} elements consumes: float32 fills all n first; bf16/f16 fill block by block. */
    public static long normalDraws(long n, boolean reducedPrecision) {
        long tail = n % 16 != 0 ? 16 : 0;
        return reducedPrecision ? n / 16 * 16 + tail : n + tail;
    }

    /** Turns 16 uniforms at {@code d[i..i+16)} into 16 standard normals in place. */
    static void boxMuller(float[] d, int i) {
        for (int j = 0; j < 8; j++) {
            float u1 = 1.0f - d[i + j];
            float u2 = d[i + j + 8];
            float r = (float) Math.sqrt(-2.0f * log(u1));
            float theta = TWO_PI * u2;
            float[] sc = sincos(theta);
            d[i + j] = r * sc[1];
            d[i + j + 8] = r * sc[0];
        }
    }

    static final float TWO_PI = (float) (2 * Math.PI);

    private static final float SQRTHF = 0.707106781186547524f;
    private static final float[] LOG_P = {7.0376836292E-2f, -1.1514610310E-1f, 1.1676998740E-1f, -1.2420140846E-1f, 1.4249322787E-1f,
            -1.6668057665E-1f, 2.0000714765E-1f, -2.4999993993E-1f, 3.3333331174E-1f};
    private static final float LOG_Q1 = -2.12194440e-4f, LOG_Q2 = 0.693359375f;

    /** Natural log of a positive float, as torch's AVX2 kernel computes it. */
    static float log(float x) {
        if (!(x > 0)) return x == 0 ? Float.NEGATIVE_INFINITY : Float.NaN;
        x = Math.max(x, Float.MIN_NORMAL);
        int bits = Float.floatToRawIntBits(x);
        float e = (float) ((bits >>> 23) - 0x7f) + 1.0f;
        float m = Float.intBitsToFloat((bits & ~0x7f800000) | 0x3f000000);
        float v;
        if (m < SQRTHF) {
            e = e - 1.0f;
            v = (m - 1.0f) + m;
        } else {
            v = m - 1.0f;
        }
        float z = v * v;
        float y = LOG_P[0];
        for (int k = 1; k < LOG_P.length; k++) y = Math.fma(y, v, LOG_P[k]);
        y = y * v;
        y = Math.fma(y, z, e * LOG_Q1);
        y = Math.fma(-0.5f, z, y);
        v = v + y;
        return Math.fma(e, LOG_Q2, v);
    }

    private static final float FOPI = 1.27323954473516f;
    private static final float DP1 = -0.78515625f, DP2 = -2.4187564849853515625e-4f, DP3 = -3.77489497744594108e-8f;
    private static final float SIN_P0 = -1.9515295891E-4f, SIN_P1 = 8.3321608736E-3f, SIN_P2 = -1.6666654611E-1f;
    private static final float COS_P0 = 2.443315711809948E-005f, COS_P1 = -1.388731625493765E-003f, COS_P2 = 4.166664568298827E-002f;

    /** {sin x, cos x} as torch's AVX2 kernel computes them. */
    static float[] sincos(float x) {
        int signSin = Float.floatToRawIntBits(x) & 0x80000000;
        x = Math.abs(x);
        int j = (int) (x * FOPI);
        j = (j + 1) & ~1;
        float y = j;
        int swapSin = (j & 4) << 29;
        boolean poly = (j & 2) == 0;
        x = Math.fma(y, DP1, x);
        x = Math.fma(y, DP2, x);
        x = Math.fma(y, DP3, x);
        int signCos = (~(j - 2) & 4) << 29;
        signSin ^= swapSin;
        float z = x * x;
        float c = COS_P0;
        c = Math.fma(c, z, COS_P1);
        c = Math.fma(c, z, COS_P2);
        c = c * z;
        c = Math.fma(c, z, -(z * 0.5f));
        c = c + 1.0f;
        float s = SIN_P0;
        s = Math.fma(s, z, SIN_P1);
        s = Math.fma(s, z, SIN_P2);
        s = s * z;
        s = Math.fma(s, x, x);
        float sin = poly ? s : c, cos = poly ? c : s;
        sin = Float.intBitsToFloat(Float.floatToRawIntBits(sin) ^ signSin);
        cos = Float.intBitsToFloat(Float.floatToRawIntBits(cos) ^ signCos);
        return new float[] {sin, cos};
    }

    /**
     * The normals {@code randn_like} gives a tensor of {@code n} elements drawn from a generator in
     * state {@code start}, readable at any position: float32 tensors take their uniforms in one
     * fill, bf16/f16 tensors block by block; either way a partial last block is replaced by a
     * block of 16 fresh draws over the last 16 elements. Values are float32 (round them for bf16).
     */
    public static final class NormalStream {
        private final TorchRandom start;
        private final long n;
        private final float[] tail;
        private TorchRandom at;
        private long atBlock;
        private final float[] block = new float[16];
        private long cachedBlock = -1;

        public NormalStream(TorchRandom start, long n, boolean reducedPrecision) {
            checkVectorised(n);
            this.start = start.copy();
            this.n = n;
            if (n % 16 != 0) {
                TorchRandom t = start.copy();
                t.skip(reducedPrecision ? n / 16 * 16 : n);
                tail = new float[16];
                for (int k = 0; k < 16; k++) tail[k] = t.uniform();
                boxMuller(tail, 0);
            } else {
                tail = null;
            }
            at = this.start.copy();
            atBlock = 0;
        }

        /** Element {@code k}'s normal (calls with rising k are cheapest). */
        public float get(long k) {
            if (tail != null && k >= n - 16) return tail[(int) (k - (n - 16))];
            long b = k / 16;
            if (b != cachedBlock) {
                if (b < atBlock) {
                    at = start.copy();
                    atBlock = 0;
                }
                at.skip((b - atBlock) * 16);
                for (int i = 0; i < 16; i++) block[i] = at.uniform();
                boxMuller(block, 0);
                atBlock = b + 1;
                cachedBlock = b;
            }
            return block[(int) (k % 16)];
        }
    }

    @Override
    public String toString() {
        return "TorchRandom@" + index + ":" + Arrays.hashCode(mt);
    }
}
