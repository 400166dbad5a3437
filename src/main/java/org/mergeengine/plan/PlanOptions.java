package org.mergeengine.plan;

/**
 * Planning choices from the command line.
 * @param seed seeds the random methods (with each tensor's name)
 * @param outShardSize bytes per output shard (mergekit's --out-shard-size); <= 0 for one shard
 * @param allowCrimes allow mixing architectures
 */
public record PlanOptions(long seed, long outShardSize, boolean allowCrimes) {
    public static final long DEFAULT_SEED = 42;
    public static final long DEFAULT_SHARD_SIZE = 5_000_000_000L;

    public static PlanOptions defaults() {
        return new PlanOptions(DEFAULT_SEED, DEFAULT_SHARD_SIZE, false);
    }
}
