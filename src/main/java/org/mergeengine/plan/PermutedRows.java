package org.mergeengine.plan;

import java.util.List;
import org.mergeengine.formats.ModelFolder;

/**
 * One model's vocabulary matrix rebuilt for the output vocabulary: row {@code i} is the mean of
 * rows {@code rowIds[i]} of {@code sources[rowSources[i]]} (the model's own row, a default taken
 * from other models, or nothing: zeros). Rows from {@code padFrom} on are padding, filled with the
 * mean of rows [0, padFrom) of this rebuilt matrix.
 */
public record PermutedRows(long rows, long cols, List<ModelFolder.Located> sources, int[][] rowSources, int[][] rowIds, int padFrom) {}
