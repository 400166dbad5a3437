package org.mergeengine.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.mergeengine.formats.DType;
import org.mergeengine.methods.KernelContext;
import org.mergeengine.methods.KernelTraits;
import org.mergeengine.methods.MergeMethod;
import org.mergeengine.methods.ParamSpec;
import org.mergeengine.methods.TensorKernel;
import org.mergeengine.plan.PlannedTensor;

/** Tasks, chunks and memory from a method's traits alone: the kernel is never built. */
class SizingTest {
    /** A method that only has traits: building its kernel fails the test. */
    static MergeMethod describedAs(KernelTraits traits) {
        return new MergeMethod() {
            @Override public String name() { return "described"; }
            @Override public List<ParamSpec> parameters() { return List.of(); }
            @Override public BaseUse baseUse() { return BaseUse.OPTIONAL; }
            @Override public ResultDType resultDType() { return ResultDType.PROMOTE; }
            @Override public KernelTraits traits(KernelContext ctx) { return traits; }
            @Override public TensorKernel kernel(KernelContext ctx) { throw new AssertionError("sizing built a kernel"); }
        };
    }

    static PlannedTensor tensor(KernelTraits traits, long rows, long cols, int inputs) {
        long[] shape = {rows, cols};
        List<PlannedTensor.Input> in = new ArrayList<>();
        List<String> labels = new ArrayList<>();
        for (int i = 0; i < inputs; i++) {
            in.add(new PlannedTensor.Input("m" + i, null, shape, null));
            labels.add("m" + i);
        }
        KernelContext ctx = new KernelContext("described", "w", shape, labels, -1, Map.of(), Map.of(), 1);
        return new PlannedTensor("w", shape, DType.BF16, in, describedAs(traits), ctx);
    }

    @Test
    void streamedTensorsSplitAtChunkBoundariesIntoPartsThatCoverThem() {
        Sizing sizing = new Sizing(1000, 0);
        PlannedTensor t = tensor(KernelTraits.perElement(), 100, 170, 2); // 17,000 elements, 17 chunks
        List<long[]> parts = sizing.parts(t, 4);
        assertTrue(parts.size() > 1 && parts.size() <= 8, "about two parts per lane: " + parts.size());
        long next = 0;
        for (long[] p : parts) {
            assertEquals(next, p[0], "parts are contiguous");
            assertEquals(0, p[0] % 1000, "a part starts on a chunk boundary");
            next = p[1];
        }
        assertEquals(17_000, next, "the parts cover the tensor");
        assertEquals(1, sizing.parts(t, 1).size(), "one lane: one part");
    }

    @Test
    void partsHoldAtLeastEightChunksAndLanesGetAboutTwoEach() {
        Sizing sizing = new Sizing(1000, 0);
        // 150 x 100 = 15 chunks: two parts would hold fewer than eight chunks each.
        assertEquals(1, sizing.parts(tensor(KernelTraits.perElement(), 150, 100, 2), 4).size());
        List<long[]> two = sizing.parts(tensor(KernelTraits.perElement(), 160, 100, 2), 4); // 16 chunks
        assertEquals(2, two.size());
        assertEquals(8_000, two.get(0)[1]);
        List<long[]> many = sizing.parts(tensor(KernelTraits.perElement(), 1000, 1000, 2), 2); // 1,000 chunks, 2 lanes
        assertEquals(4, many.size(), "two parts per lane");
        for (long[] p : many) assertTrue(p[1] - p[0] >= 8 * 1000L);
    }

    @Test
    void tensorsWithStatisticsOverTheWholeTensorAreNotSplit() {
        Sizing sizing = new Sizing(1000, 0);
        assertEquals(1, sizing.parts(tensor(KernelTraits.streamed().withPasses(1), 100, 170, 2), 4).size());
        assertEquals(1, sizing.parts(tensor(new KernelTraits(true, 1, 0, false, false), 100, 170, 2), 4).size());
        assertEquals(1, sizing.parts(tensor(KernelTraits.perElement(), 10, 170, 2), 4).size(), "fewer than two parts of eight chunks stay whole");
    }

    @Test
    void chunksFollowTheKernelsAlignment() {
        Sizing sizing = new Sizing(1000, 0);
        PlannedTensor t = tensor(KernelTraits.streamed().withAlignment(170), 100, 170, 2);
        assertEquals(850, sizing.chunkLength(t, Sizing.traits(t)), "whole rows of 170, at most 1000 elements");
        PlannedTensor wide = tensor(KernelTraits.streamed().withAlignment(1700), 10, 1700, 2);
        assertEquals(1700, sizing.chunkLength(wide, Sizing.traits(wide)), "a row longer than a chunk is one chunk");
        PlannedTensor whole = tensor(new KernelTraits(true, 1, 0, false, false), 100, 170, 2);
        assertEquals(17_000, sizing.chunkLength(whole, Sizing.traits(whole)));
    }

    @Test
    void aTensorKeptAcrossItsPassesIsSizedWhole() {
        KernelTraits passes = KernelTraits.streamed().withPasses(2);
        PlannedTensor t = tensor(passes, 100, 170, 3); // 17,000 floats per input
        long inputs = 17_000L * 4 * 3;
        Sizing roomy = new Sizing(1000, inputs), tight = new Sizing(1000, inputs - 1);
        assertTrue(roomy.retains(t, passes) && !tight.retains(t, passes));
        assertTrue(roomy.memoryEstimate(t) >= inputs, "a retained tensor holds every input whole");
        assertTrue(tight.memoryEstimate(t) < inputs, "a streamed one holds a few chunks");
        assertTrue(new Sizing(1000, 0).memoryEstimate(tensor(passes, 100, 170, 4)) > tight.memoryEstimate(t), "more inputs, more memory");
    }
}
