package org.mergeengine.forward;

/** A projection y = x·Wᵀ + b with W held transposed (wt[i·out + o] = W[o][i]), so products stream along output columns. */
record Linear(float[] wt, int in, int out, float[] bias) {}
