"""Writes src/test/resources/moe/torch_random.json: draws of torch's CPU generator after manual_seed,
used by TorchRandomTest to check the Java port bit for bit. Run once with torch installed:
    python scripts/torch_random_fixture.py src/test/resources/moe/torch_random.json
"""
import json
import struct
import sys

import torch


def bits(t):
    return [struct.unpack("<I", struct.pack("<f", float(x)))[0] for x in t.float().tolist()]


cases = []
for seed, n in [(42, 4), (7, 1000), (123456789, 33)]:
    torch.manual_seed(seed)
    cases.append({"kind": "rand", "seed": seed, "n": n, "bits": bits(torch.rand(n))})
for seed, n in [(42, 32), (42, 20), (1, 16), (3, 1000), (99, 4099), (2**40 + 5, 50)]:
    torch.manual_seed(seed)
    cases.append({"kind": "randn", "seed": seed, "n": n, "bits": bits(torch.randn(n))})
for seed, n in [(42, 20), (5, 1000), (11, 77)]:
    torch.manual_seed(seed)
    cases.append({"kind": "randn_bf16", "seed": seed, "n": n, "bits": bits(torch.randn_like(torch.zeros(n, dtype=torch.bfloat16)))})
# consecutive draws: a gate draw then noise draws share one stream
torch.manual_seed(42)
a = torch.rand(2 * 3 * 32)
b = torch.randn(48 * 32)
c = torch.randn_like(torch.zeros(40, dtype=torch.bfloat16))
cases.append({"kind": "sequence", "seed": 42, "rand": 2 * 3 * 32, "randn": 48 * 32, "randn_bf16": 40,
              "bits": bits(a) + bits(b) + bits(c)})
json.dump({"torch": torch.__version__, "cases": cases}, open(sys.argv[1], "w"))
