package org.mergeengine.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.mergeengine.engine.WorkState.Assignment;
import org.mergeengine.engine.WorkState.Deadline;
import org.mergeengine.engine.WorkState.Expired;
import org.mergeengine.engine.WorkState.Outcome;
import org.mergeengine.engine.WorkState.Entry;

/** The scheduling core alone: no actors, no clock (time is a number the test passes in). */
class WorkStateTest {
    static final long SEC = 1_000_000_000L;

    /** Three tensors: tensor 0 in two parts, tensors 1 and 2 whole; input bytes and memory per part as given. */
    static List<Entry> parts() {
        return List.of(new Entry(new Task(0, 0, 50), 100, 10), new Entry(new Task(0, 50, 100), 100, 10), new Entry(new Task(1, 0, 10), 1L << 30, 30),
                new Entry(new Task(2, 0, 10), 50, 20));
    }

    static WorkState<String> state(int maxAttempts, Deadline d) {
        return new WorkState<>(parts(), 3, 100 + 100 + (1L << 30) + 50, 0, 0, maxAttempts, d, 0);
    }

    static List<Integer> ids(List<Assignment<String>> a) {
        List<Integer> out = new ArrayList<>();
        for (Assignment<String> x : a) out.add(x.taskId());
        return out;
    }

    @Test
    void lanesGetTasksInPlanOrderAndProgressCountsTensorsWhoseEveryPartIsDone() {
        WorkState<String> s = state(1, Deadline.NONE);
        s.ready("x");
        s.ready("y");
        List<Assignment<String>> first = s.dispatch(0, WorkState.Admission.ANY);
        assertEquals(List.of(0, 1), ids(first));
        assertEquals("x", first.get(0).lane());
        assertEquals("y", first.get(1).lane());
        assertTrue(s.dispatch(0, WorkState.Admission.ANY).isEmpty(), "no idle lane left");

        assertTrue(s.finished(0, "x"));
        s.confirmed(0, "lane-x");
        assertEquals(0, s.progress(5).tensorsDone(), "half of tensor 0 is not tensor 0");
        assertEquals(100, s.progress(5).inputBytesDone());
        assertEquals(List.of(2), ids(s.dispatch(1, WorkState.Admission.ANY)), "the lane that answered gets the next task");
        assertTrue(s.finished(1, "y"));
        s.confirmed(1, "lane-y");
        Progress p = s.progress(7 * SEC);
        assertEquals(1, p.tensorsDone());
        assertEquals(3, p.tensorsTotal());
        assertEquals(7 * SEC, p.elapsedNanos());
        assertEquals(Map.of("lane-x", 1, "lane-y", 1), p.tasksByLane());
        assertFalse(s.allDone());
    }

    @Test
    void aTaskWaitsForMemoryAndKeepsItsPlaceInTheQueue() {
        WorkState<String> s = state(1, Deadline.NONE);
        long[] free = {15};
        WorkState.Admission budget = (bytes, nothingRunning) -> {
            if (!nothingRunning && bytes > free[0]) return false;
            free[0] -= bytes;
            return true;
        };
        for (String l : List.of("a", "b", "c")) s.ready(l);
        assertEquals(List.of(0), ids(s.dispatch(0, budget)), "the second part (10 bytes) does not fit beside the first");
        assertEquals(10, s.inFlightBytes());
        free[0] += 10;
        s.finished(0, "a");
        s.confirmed(0, "a");
        assertEquals(0, s.inFlightBytes());
        assertEquals(List.of(1), ids(s.dispatch(0, budget)));
        // task 2 needs 30 of the 15 left: it waits, and the 20-byte task 3 behind it does not overtake it
        assertTrue(s.dispatch(0, budget).isEmpty());
        free[0] += 10;
        s.finished(1, "b");
        s.confirmed(1, "b");
        assertEquals(List.of(2), ids(s.dispatch(0, budget)), "with nothing running, a task larger than the budget runs alone");
    }

    @Test
    void aLostLaneGivesItsTasksBackToTheFrontInPlanOrder() {
        WorkState<String> s = state(3, Deadline.NONE);
        s.ready("x");
        s.ready("y");
        s.dispatch(0, WorkState.Admission.ANY);
        s.ready("z");
        s.laneLost("x");
        assertEquals(0, s.attempts(0), "a lane leaving is not the task's failure");
        assertEquals(List.of(0), ids(s.dispatch(0, WorkState.Admission.ANY)), "task 0 goes before the never-started task 2");
        assertFalse(s.finished(0, "x"), "the lost lane's answer is stale");
        assertTrue(s.finished(0, "z"));
    }

    @Test
    void aFailedTaskRunsElsewhereUntilItHasFailedTooOften() {
        WorkState<String> s = state(2, Deadline.NONE);
        s.ready("x");
        s.ready("y");
        s.dispatch(0, WorkState.Admission.ANY);
        assertEquals(Outcome.IGNORED, s.failed(0, "y"), "y holds task 1, not task 0");
        assertEquals(Outcome.REQUEUED, s.failed(0, "x"));
        s.ready("z");
        List<Assignment<String>> again = s.dispatch(0, WorkState.Admission.ANY);
        assertEquals(List.of(0), ids(again), "the failed task goes first");
        assertEquals("z", again.get(0).lane());
        assertEquals(Outcome.EXHAUSTED, s.failed(0, "z"));
    }

    @Test
    void bytesThatDoNotCheckOutAreWrittenAgain() {
        WorkState<String> s = state(2, Deadline.NONE);
        s.ready("x");
        s.dispatch(0, WorkState.Admission.ANY);
        s.finished(0, "x");
        assertFalse(s.idleAll(), "a part being checked is not done");
        assertEquals(Outcome.REQUEUED, s.rejected(0));
        assertEquals(List.of(0), ids(s.dispatch(0, WorkState.Admission.ANY)));
        s.finished(0, "x");
        assertEquals(Outcome.EXHAUSTED, s.rejected(0));
    }

    @Test
    void aTaskPastItsDeadlineGoesToAnotherLaneAndTheLateAnswerIsIgnored() {
        // two seconds, plus a second per GiB of input: task 2 (1 GiB) gets three seconds
        WorkState<String> s = state(3, new Deadline(Duration.ofSeconds(2), Duration.ofSeconds(1)));
        s.ready("hung");
        s.ready("other");
        assertEquals(List.of(0, 1), ids(s.dispatch(10 * SEC, WorkState.Admission.ANY)));
        long due = 12 * SEC + SEC * 100 / (1L << 30); // 100 bytes of input add 93 ns
        assertEquals(due, s.nextDeadline().getAsLong());
        assertTrue(s.expire(due - 1).isEmpty(), "not yet");
        s.finished(1, "other");
        s.confirmed(1, "other");

        List<Expired<String>> late = s.expire(due);
        assertEquals(1, late.size());
        assertEquals(0, late.get(0).assignment().taskId());
        assertEquals("hung", late.get(0).assignment().lane());
        assertEquals(Outcome.REQUEUED, late.get(0).outcome());
        assertEquals(1, s.attempts(0));

        List<Assignment<String>> next = s.dispatch(13 * SEC, WorkState.Admission.ANY);
        assertEquals(List.of(0), ids(next), "the expired task goes first, to the lane that is still here");
        assertEquals("other", next.get(0).lane());
        assertFalse(s.finished(0, "hung"), "the first lane's late answer is ignored");
        assertEquals(Outcome.IGNORED, s.failed(0, "hung"));
        assertTrue(s.finished(0, "other"));
        s.confirmed(0, "other");
        assertEquals(Map.of("other", 2), s.progress(14 * SEC).tasksByLane());
        assertEquals(1, s.progress(14 * SEC).tensorsDone());

        assertEquals(List.of(2), ids(s.dispatch(20 * SEC, WorkState.Admission.ANY)));
        assertEquals(23 * SEC, s.nextDeadline().getAsLong(), "the 1 GiB task's deadline is a second later");
    }

    @Test
    void withoutADeadlineNothingExpires() {
        WorkState<String> s = state(3, Deadline.NONE);
        s.ready("x");
        s.dispatch(0, WorkState.Admission.ANY);
        assertTrue(s.nextDeadline().isEmpty());
        assertTrue(s.expire(Long.MAX_VALUE).isEmpty());
    }

    @Test
    void idleLanesAreDismissedOnlyWhenTheQueueIsEmpty() {
        WorkState<String> s = new WorkState<>(List.of(new Entry(new Task(0, 0, 1), 1, 1)), 1, 1, 0, 0, 1, Deadline.NONE, 0);
        s.ready("x");
        s.ready("y");
        assertTrue(s.dismissIdle().isEmpty());
        s.dispatch(0, WorkState.Admission.ANY);
        assertEquals(List.of("y"), s.dismissIdle());
        s.finished(0, "x");
        s.confirmed(0, "x");
        assertTrue(s.allDone());
        assertTrue(s.idleAll());
    }
}
