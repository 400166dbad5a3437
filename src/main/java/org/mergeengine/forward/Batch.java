package org.mergeengine.forward;

import java.util.Arrays;

/** One left-padded batch of token ids: ids[b][t], mask[b][t] = 1 for real tokens, 0 for padding. */
public record Batch(int[][] ids, int[][] mask) {
    /** A batch of unpadded rows of one length (every mask entry 1). */
    public static Batch unpadded(int[][] ids) {
        int[][] mask = new int[ids.length][];
        for (int b = 0; b < ids.length; b++) {
            mask[b] = new int[ids[b].length];
            Arrays.fill(mask[b], 1);
        }
        return new Batch(ids, mask);
    }

    public int rows() {
        return ids.length;
    }

    /** Padded length T. */
    public int length() {
        return ids.length == 0 ? 0 : ids[0].length;
    }
}
