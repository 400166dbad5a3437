#!/usr/bin/env python3
"""The bench's linear and ties merges done the way mergekit does them, in PyTorch.

mergekit itself cannot be installed on the development machine (no PyPI there), so this script
stands in for it to give merge-engine's times a point of comparison on the same files. It follows
mergekit's approach as ../shared/spec/mergekit-compat.md describes it, not its code:
  - whole tensors in memory, one output tensor at a time, inputs in the order of the base's tensors;
  - arithmetic in the inputs' dtype (the bench's configs set no `dtype`, so bf16 on the CPU);
  - linear: stack, multiply by the weights, sum, divide by the sum of the weights;
  - ties: task vectors, magnitude sparsification by a full float32 sort of |delta| (k = floor(density
    * numel)), weights, sum sign consensus, divisor of agreeing weights (1 where none), base + mix;
  - the output shard's tensors are kept in memory until the shard is written (one 5 GB shard here).
It reads and writes safetensors directly (the `safetensors` package is not installed either).

    python3 benchmarks/torch_reference.py linear OUT BASE_DIR FT1_DIR
    python3 benchmarks/torch_reference.py ties OUT BASE_DIR FT1_DIR   # weight 1, density 0.5

    python3 benchmarks/torch_reference.py compare OURS/model.safetensors REF/model.safetensors

Prints the wall time; `benchmarks/torch_reference.sh` times it beside the jar on the bench's files.
"""
import json
import os
import struct
import sys
import time

import torch

DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}
NAMES = {v: k for k, v in DTYPES.items()}


class SafetensorsFile:
    def __init__(self, path):
        self.f = open(path, "rb")
        (n,) = struct.unpack("<Q", self.f.read(8))
        self.header = json.loads(self.f.read(n))
        self.header.pop("__metadata__", None)
        self.start = 8 + n

    def names(self):
        return sorted(self.header, key=lambda k: self.header[k]["data_offsets"][0])

    def get(self, name):
        h = self.header[name]
        b, e = h["data_offsets"]
        self.f.seek(self.start + b)
        buf = bytearray(e - b)
        self.f.readinto(buf)
        return torch.frombuffer(buf, dtype=DTYPES[h["dtype"]]).reshape(h["shape"])


def model_file(folder):
    path = os.path.join(folder, "model.safetensors")
    if not os.path.exists(path):
        sys.exit(f"{folder}: only single-file models (model.safetensors) are read by this reference")
    return SafetensorsFile(path)


def linear(tensors, weights):
    w = torch.tensor(weights, dtype=tensors[0].dtype).view(-1, *([1] * tensors[0].dim()))
    stacked = torch.stack(tensors, dim=0)
    return (stacked * w).sum(dim=0) / w.sum(dim=0)


def magnitude(delta, density):
    k = int(density * delta.numel())
    order = torch.argsort(delta.abs().view(-1).float(), descending=True)
    mask = torch.zeros(delta.numel(), dtype=delta.dtype)
    mask[order[:k]] = 1
    return delta * mask.view(delta.shape)


def ties(base, others, weights, density):
    deltas = [magnitude(x - base, density) for x in others]
    w = torch.tensor(weights, dtype=base.dtype).view(-1, *([1] * base.dim()))
    stacked = torch.stack(deltas, dim=0) * w
    sign = torch.where(stacked.sum(dim=0) >= 0, 1, -1).to(base.dtype)
    agree = stacked.sign() == sign
    mixed = (stacked * agree).sum(dim=0)
    divisor = (w * agree).sum(dim=0)
    divisor[divisor == 0] = 1
    return base + mixed / divisor


def write(path, tensors):
    header, offset = {}, 0
    for name, t in tensors.items():
        n = t.numel() * t.element_size()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for t in tensors.values():
            # bf16 has no numpy dtype: write the bytes through an int16 view
            f.write(t.contiguous().view(torch.int16).numpy().tobytes())
        f.flush()
        os.fsync(f.fileno())


def compare(a_path, b_path):
    """How far two merges' outputs are apart: identical elements, elements within one bf16 ulp of
    the larger of the two values, and the largest difference relative to the tensor's largest value."""
    a, b = SafetensorsFile(a_path), SafetensorsFile(b_path)
    if sorted(a.header) != sorted(b.header):
        sys.exit(f"{a_path} and {b_path} hold different tensors")
    same = near = total = 0
    worst = 0.0
    for name in b.names():
        x, y = a.get(name).float(), b.get(name).float()
        if x.shape != y.shape:
            sys.exit(f"{name}: shape {list(x.shape)} vs {list(y.shape)}")
        diff = (x - y).abs()
        larger = torch.maximum(x.abs(), y.abs()).clamp(min=2.0 ** -126)
        ulp = torch.pow(2.0, torch.floor(torch.log2(larger)) - 7)
        same += int((diff == 0).sum())
        near += int((diff <= ulp).sum())
        worst = max(worst, float(diff.max() / y.abs().max().clamp(min=2.0 ** -126)))
        total += y.numel()
    print(f"{same / total:.4f} identical, {near / total:.4f} within 1 ulp, largest difference {worst:.2g} of the tensor's largest value")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) != 5 or sys.argv[1] not in ("linear", "ties"):
        sys.exit(__doc__)
    method, out, base_dir, ft_dir = sys.argv[1:]
    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.time()
    base, ft = model_file(base_dir), model_file(ft_dir)
    merged = {}
    for name in base.names():
        b, x = base.get(name), ft.get(name)
        merged[name] = linear([b, x], [0.5, 0.5]) if method == "linear" else ties(b, [x], [1.0], 0.5)
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "model.safetensors"), merged)
    print(f"{method}: {time.time() - t0:.2f} s")


if __name__ == "__main__":
    main()
