package org.mergeengine.engine;

import org.mergeengine.plan.MergePlan;

/**
 * A unit of work of a merge: elements [from, to) of the plan's tensor number {@code tensor}, the
 * whole tensor or a part of one that several lanes share. A task's bytes do not depend on which
 * lane, node or attempt wrote them.
 */
public record Task(int tensor, long from, long to) {
    /** The task's name in the journal. */
    String key(MergePlan plan) {
        return plan.tensors().get(tensor).name() + "@" + from + "-" + to;
    }
}
