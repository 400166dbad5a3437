"""By-hand check of a `moe` output against an independent reading of mergekit-moe's rules
(written from the spec, not from mergekit's code), with transformers and torch.

    python scripts/check_moe.py CONFIG.yaml OUT_DIR [--seed 42]

1. loads OUT_DIR with transformers (every tensor used, none missing) and generates a few tokens;
2. rebuilds every non-router tensor from the input models (noise drawn with torch's generator in
   mergekit-moe's order) and compares bytes;
3. recomputes the routers (hidden modes: the base in bfloat16 through transformers) and reports
   the smallest per-row cosine and the largest absolute difference.
Relative model paths are looked up beside the config, as merge-engine does.
"""
import argparse
import json
import os
import sys

import torch
import yaml
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

p = argparse.ArgumentParser()
p.add_argument("config")
p.add_argument("out")
p.add_argument("--seed", type=int, default=42)
p.add_argument("--no-load", action="store_true", help="skip step 1 (DeepSeek MoE needs its remote code)")
args = p.parse_args()

cfg = yaml.safe_load(open(args.config))
here = os.path.dirname(os.path.abspath(args.config))


def path_of(ref):
    return ref if os.path.isdir(ref) else os.path.join(here, ref)


class Model:
    def __init__(self, ref):
        self.dir = path_of(ref)
        self.config = json.load(open(os.path.join(self.dir, "config.json")))
        self.files = {}
        idx = os.path.join(self.dir, "model.safetensors.index.json")
        names = json.load(open(idx))["weight_map"] if os.path.exists(idx) else None
        if names is None:
            f = safe_open(os.path.join(self.dir, "model.safetensors"), "pt")
            self.map = {k: f for k in f.keys()}
        else:
            opened = {}
            self.map = {}
            for k, fn in names.items():
                if fn not in opened:
                    opened[fn] = safe_open(os.path.join(self.dir, fn), "pt")
                self.map[k] = opened[fn]

    def get(self, name):
        return self.map[name].get_tensor(name)

    def has(self, name):
        return name in self.map


base = Model(cfg["base_model"])
experts = [Model(e["source_model"]) for e in cfg["experts"]]
shared_cfg = cfg.get("shared_experts") or []
shared = [Model(e["source_model"]) for e in shared_cfg]
all_cfg = list(cfg["experts"]) + list(shared_cfg)
all_models = experts + shared
out_cfg = json.load(open(os.path.join(args.out, "config.json")))
arch = out_cfg["architectures"][0]
L, H = base.config["num_hidden_layers"], base.config["hidden_size"]
E = len(experts)
dtype_name = cfg.get("dtype") or base.config.get("dtype") or base.config.get("torch_dtype")
out_dtype = getattr(torch, dtype_name.replace("torch.", "")) if dtype_name else None
gate_mode = cfg.get("gate_mode", "hidden")

# --- 1. transformers loads it strictly and generates
bad = {}
if not args.no_load:
    model, info = AutoModelForCausalLM.from_pretrained(args.out, output_loading_info=True, trust_remote_code=False)
    bad = {k: v for k, v in info.items() if v}
    print("loading info:", "clean" if not bad else bad)
    tok = AutoTokenizer.from_pretrained(args.out)
    ids = tok("hello world", return_tensors="pt", add_special_tokens=True)
    gen = model.generate(**ids, max_new_tokens=8, do_sample=False)
    print("generated ids:", gen[0].tolist())

# --- 2. non-router tensors
out = Model(args.out)
torch.manual_seed(args.seed)
need = list(range(E)) + (list(range(E, E + len(shared))) if gate_mode in ("random", "uniform_random")
                         or any(s.get("positive_prompts") for s in shared_cfg) else [])
random_gates = None
if gate_mode == "random":
    random_gates = torch.randn(L, len(need), H)
elif gate_mode == "uniform_random":
    s = (1 / H) ** 0.5
    random_gates = torch.rand(L, len(need), H) * 2 * s - s


def expert_tensor(i, layer, proj, noise_cache):
    key = (i, layer, proj)
    if key in noise_cache:
        return noise_cache[key]
    raise KeyError(key)


def draw_order():
    order = []
    if arch == "MixtralForCausalLM":
        for l in range(L):
            for e in range(E):
                order += [(e, l, p) for p in ("gate_proj", "down_proj", "up_proj")]
    elif arch == "Qwen3MoeForCausalLM":
        for l in range(L):
            for e in range(E):
                order += [(e, l, p) for p in ("gate_proj", "up_proj", "down_proj")]
    elif arch == "DeepseekForCausalLM":
        for l in range(L):
            for p in ("up_proj", "gate_proj", "down_proj"):
                order += [(e, l, p) for e in range(E + len(shared))]
    else:
        for l in range(L):
            for p in ("down_proj", "gate_proj", "up_proj"):
                order += [(e, l, p) for e in range(E + len(shared))]
    return order


tensors = {}
for e, l, p in draw_order():
    x = all_models[e].get(f"model.layers.{l}.mlp.{p}.weight")
    ec = all_cfg[e]
    if ec.get("noise_scale") is not None:
        x = x + torch.randn_like(x) * ec["noise_scale"]
    if p == "down_proj" and ec.get("residual_scale") is not None:
        x = x * ec["residual_scale"]
    tensors[(e, l, p)] = x


def cast(t):
    return t.to(out_dtype) if out_dtype is not None else t


mism = 0
checked = 0
for name in out.map:
    got = out.get(name)
    if ".mlp.gate.weight" in name or "shared_expert_gate" in name:
        continue
    parts = name.split(".")
    if ".mlp.experts.gate_up_proj" in name or ".mlp.experts.down_proj" in name:
        l = int(parts[2])
        if name.endswith("gate_up_proj"):
            want = torch.stack([torch.cat([tensors[(e, l, "gate_proj")], tensors[(e, l, "up_proj")]], 0) for e in range(E)])
        else:
            want = torch.stack([tensors[(e, l, "down_proj")] for e in range(E)])
    elif ".mlp.experts." in name or ".mlp.shared_expert" in name:
        l = int(parts[2])
        proj = parts[-2]
        e = int(parts[5]) if ".mlp.experts." in name else E
        want = tensors[(e, l, proj)]
    elif base.has(name):
        want = base.get(name)
    elif name.endswith("_proj.bias"):
        want = torch.zeros(got.shape)
    else:
        print("unexpected tensor", name)
        mism += 1
        continue
    want = cast(want)
    checked += 1
    if got.dtype != want.dtype or got.shape != want.shape or not torch.equal(got.view(torch.uint8) if got.dtype != torch.bool else got,
                                                                             want.contiguous().view(torch.uint8)):
        mism += 1
        print("MISMATCH", name, got.dtype, want.dtype, tuple(got.shape), tuple(want.shape),
              (got.float() - want.float()).abs().max().item() if got.shape == want.shape else "")
print(f"non-router tensors: {checked} checked, {mism} differ")

# --- 3. routers
def prompt_batch(tk, prompts):
    bos = tk.bos_token or ""
    enc = [tk(bos + p, add_special_tokens=False)["input_ids"] for p in prompts]
    T = max(len(x) for x in enc)
    pad = tk.bos_token_id if tk.bos_token_id is not None else tk.eos_token_id
    ids = [[pad] * (T - len(x)) + x for x in enc]
    mask = [[0] * (T - len(x)) + [1] * len(x) for x in enc]
    return torch.tensor(ids), torch.tensor(mask)


if random_gates is not None:
    gates = random_gates
else:
    btok = AutoTokenizer.from_pretrained(base.dir)
    rows = []
    if gate_mode == "cheap_embed":
        emb = base.get("model.embed_tokens.weight").float()

        def f(prompts):
            ids, mask = prompt_batch(btok, prompts)
            v = (emb[ids] * mask.unsqueeze(-1)).sum(dim=(0, 1))
            return (v / v.norm().clamp(min=1e-8)).unsqueeze(0).expand(L, H)
    else:
        bm = AutoModelForCausalLM.from_pretrained(base.dir, dtype=torch.bfloat16)

        def f(prompts):
            ids, mask = prompt_batch(btok, prompts)
            with torch.no_grad():
                hs = bm(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[:-1]
            if gate_mode == "hidden_avg":
                return torch.stack([h.mean(dim=1).mean(dim=0) for h in hs])
            return torch.stack([h[:, -1, :].mean(dim=0) for h in hs])
    for n in need:
        ec = all_cfg[n]
        v = f(ec["positive_prompts"])
        if ec.get("negative_prompts"):
            v = v - f(ec["negative_prompts"])
        v = v / v.norm(dim=-1, keepdim=True).clamp(min=1e-8)
        rows.append(v)
    gates = torch.stack(rows, dim=1)

worst_cos, worst_abs = 1.0, 0.0
for l in range(L):
    got = out.get(f"model.layers.{l}.mlp.gate.weight").float()
    want = gates[l, :E].float()
    if "shared_expert_gate" in " ".join(out.map):
        got = torch.cat([got, out.get(f"model.layers.{l}.mlp.shared_expert_gate.weight").float()])
        want = gates[l].float()
    cos = torch.nn.functional.cosine_similarity(got, want, dim=-1)
    worst_cos = min(worst_cos, cos.min().item())
    worst_abs = max(worst_abs, (got - cast(want).float()).abs().max().item())
print(f"routers ({gate_mode}): min per-row cosine {worst_cos:.6f}, max |difference| {worst_abs:.3g}")
sys.exit(1 if mism or bad or worst_cos < 0.999 else 0)
