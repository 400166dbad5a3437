package org.mergeengine.cluster;

/** Messages that cross nodes; bound to Jackson CBOR in {@code merge-engine-cluster.conf}. */
public interface ClusterMessage {}
