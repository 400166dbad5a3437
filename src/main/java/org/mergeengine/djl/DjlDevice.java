package org.mergeengine.djl;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDManager;
import java.util.ArrayList;
import java.util.List;
import org.mergeengine.MergeException;
import org.mergeengine.engine.Device;
import org.mergeengine.methods.TensorKernel;
import org.mergeengine.plan.PlannedTensor;

/**
 * A worker lane bound to a DJL (PyTorch) device: a GPU, or the CPU. The methods of
 * {@link DjlKernels#METHODS} compute there; every other method runs its Java kernel on this lane.
 */
public final class DjlDevice implements Device {
    private final String name;
    private final NDManager root;

    private DjlDevice(String name, ai.djl.Device device) {
        this.name = name;
        this.root = NDManager.newBaseManager(device, "PyTorch");
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public int tileElements() {
        return Integer.MAX_VALUE;
    }

    @Override
    public TensorKernel kernel(PlannedTensor t) {
        TensorKernel java = t.method().kernel(t.context());
        return DjlKernels.of(t.method(), t.context(), java, root).orElse(java);
    }

    /** The PyTorch engine, or a clear error when DJL cannot load it. */
    static Engine engine() {
        try {
            return Engine.getEngine("PyTorch");
        } catch (RuntimeException | UnsatisfiedLinkError e) {
            throw MergeException.user("the DJL backend could not load PyTorch (" + e.getMessage() + "). DJL downloads the PyTorch build that matches "
                    + "this machine at first use, which needs network access (and not -Dai.djl.offline=true); offline, put "
                    + "ai.djl.pytorch:pytorch-native-cpu (or a CUDA build) on the class path. Or run without --backend djl.");
        }
    }

    /** {@code lanes} lanes on the CPU through DJL. */
    public static List<Device> cpu(int lanes) {
        engine();
        List<Device> l = new ArrayList<>();
        for (int i = 0; i < lanes; i++) l.add(new DjlDevice("djl-cpu-" + i, ai.djl.Device.cpu()));
        return l;
    }

    /** One lane per CUDA device DJL sees (at most {@code max}, when max > 0). */
    public static List<Device> cuda(int max) {
        Engine e = engine();
        int n = e.getGpuCount();
        if (n == 0) {
            throw MergeException.user("--cuda: DJL's PyTorch (" + e.getVersion() + ") sees no CUDA device on this machine; "
                    + "check the driver (nvidia-smi), or run without --cuda");
        }
        if (max > 0) n = Math.min(n, max);
        List<Device> l = new ArrayList<>();
        for (int i = 0; i < n; i++) l.add(new DjlDevice("cuda-" + i, ai.djl.Device.gpu(i)));
        return l;
    }
}
