#!/usr/bin/env python3
"""Compares merge-engine's layer-streamed forward pass with transformers, by hand.

Builds tiny Llama, Mistral, Qwen2 and Qwen3 models with transformers (random weights, saved in
bfloat16, a small BPE tokenizer trained on the text), then for each:
  * hidden states entering every decoder layer for a left-padded batch: merge-engine's HiddenDump
    against transformers' output_hidden_states (run in float32 on the same bf16 weights, and in bf16);
  * `merge-engine eval` perplexity against transformers' on the same windows of the same text.

usage: check_forward.py --cp CLASSPATH --work DIR [--text FILE]
CLASSPATH runs org.mergeengine.cli.Main (the shaded jar, or target/classes plus the dependencies).
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys

import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders, processors

SAMPLE = """The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.
How vexingly quick daft zebras jump! Sphinx of black quartz, judge my vow. The five boxing wizards
jump quickly. Jackdaws love my big sphinx of quartz. Merging models averages their weights, and a
perplexity check tells whether the merge still predicts text. """ * 8


def make_tokenizer(text, out_dir, vocab):
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    return tok


FAMILIES = {
    "llama": dict(cls="LlamaConfig", extra=dict(rope_parameters=dict(rope_type="llama3", rope_theta=10000.0, factor=8.0,
                   low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=64)), tie=False),
    "mistral": dict(cls="MistralConfig", extra=dict(sliding_window=6, rope_parameters=dict(rope_type="default", rope_theta=10000.0)), tie=False),
    "qwen2": dict(cls="Qwen2Config", extra=dict(rope_parameters=dict(rope_type="linear", rope_theta=1000000.0, factor=2.0)), tie=True),
    "qwen3": dict(cls="Qwen3Config", extra=dict(head_dim=32, rope_parameters=dict(rope_type="default", rope_theta=1000000.0)), tie=True),
}


def build(family, work, text, vocab):
    d = os.path.join(work, family)
    os.makedirs(d, exist_ok=True)
    tok = make_tokenizer(text, d, vocab)
    spec = FAMILIES[family]
    cfg = getattr(transformers, spec["cls"])(
        vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=160, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
        tie_word_embeddings=spec["tie"], initializer_range=0.15, bos_token_id=1, eos_token_id=2, **spec["extra"])
    torch.manual_seed(sum(map(ord, family)))  # stable across runs, unlike hash()
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.3 * torch.randn_like(p))
    model.to(torch.bfloat16).save_pretrained(d)
    return d, tok


def java(cp, *args):
    r = subprocess.run(["java", "-Xmx1g", "-cp", cp] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("java failed (%d): %s\n%s" % (r.returncode, " ".join(args), r.stderr[-3000:]))
    return r.stdout


def compare_hidden(cp, d, tok, work):
    texts = ["Merging models averages their weights.", "Sphinx of black quartz, judge my vow, and jump quickly over the lazy dog."]
    enc = [tok.encode(t).ids for t in texts]
    T = max(len(e) for e in enc)
    ids = [[0] * (T - len(e)) + e for e in enc]
    mask = [[0] * (T - len(e)) + [1] * len(e) for e in enc]
    ids_file = os.path.join(work, "ids.json")
    out_file = os.path.join(work, "hidden.json")
    json.dump({"ids": ids, "mask": mask}, open(ids_file, "w"))
    java(cp, "org.mergeengine.forward.HiddenDump", d, ids_file, out_file)
    got = json.load(open(out_file))
    res = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=dtype)
        model.eval()
        with torch.no_grad():
            o = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), output_hidden_states=True)
        L = model.config.num_hidden_layers
        worst_rel, min_cos = 0.0, 1.0
        for l in range(L):
            ref = o.hidden_states[l].float()
            mine = torch.tensor(got["hidden"][l])
            for b in range(len(ids)):
                for t in range(T):
                    if mask[b][t] == 0:
                        continue  # padding rows: compared below
                    r, m = ref[b, t], mine[b, t]
                    worst_rel = max(worst_rel, ((r - m).abs().max() / r.abs().max()).item())
                    min_cos = min(min_cos, torch.nn.functional.cosine_similarity(r, m, dim=0).item())
        pad_worst = 0.0
        for l in range(L):
            ref = o.hidden_states[l].float()
            mine = torch.tensor(got["hidden"][l])
            for b in range(len(ids)):
                for t in range(T):
                    if mask[b][t] == 0:
                        r, m = ref[b, t], mine[b, t]
                        pad_worst = max(pad_worst, ((r - m).abs().max() / r.abs().max()).item())
        lp = torch.log_softmax(o.logits.float(), -1)
        lp_worst = 0.0
        for b in range(len(ids)):
            for t in range(T - 1):
                if mask[b][t] and mask[b][t + 1]:
                    lp_worst = max(lp_worst, abs(lp[b, t, ids[b][t + 1]].item() - got["logprobs"][b][t]))
        res[str(dtype).replace("torch.", "")] = dict(max_rel_err=worst_rel, min_cosine=min_cos, pad_max_rel_err=pad_worst,
                                                     logprob_max_abs_err=lp_worst)
    return res


def transformers_ppl(d, ids, ctx, dtype):
    model = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=dtype)
    model.eval()
    nll, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(ids), ctx):
            w = ids[s:s + ctx]
            if len(w) < 2:
                continue
            logits = model(input_ids=torch.tensor([w])).logits.float()[0]
            lp = torch.log_softmax(logits, -1)
            for t in range(len(w) - 1):
                nll -= lp[t, w[t + 1]].item()
                n += 1
    return math.exp(nll / n)


def compare_eval(cp, d, tok, text_file, ctx, max_tokens):
    out = java(cp, "org.mergeengine.cli.Main", "eval", d, "--text", text_file, "--context", str(ctx),
               "--max-tokens", str(max_tokens), "--batch", "2")
    mine = float(re.search(r"perplexity: ([0-9.]+)", out).group(1))
    ids = tok.encode(open(text_file, encoding="utf-8").read()).ids[:max_tokens]
    ref32 = transformers_ppl(d, ids, ctx, torch.float32)
    ref16 = transformers_ppl(d, ids, ctx, torch.bfloat16)
    return dict(java=mine, transformers_f32=ref32, transformers_bf16=ref16,
                rel_diff_f32=abs(mine - ref32) / ref32, rel_diff_bf16=abs(mine - ref16) / ref16,
                java_tokens_line=[l for l in out.splitlines() if l.startswith(("tokens", "time"))])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cp", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--text")
    ap.add_argument("--families", default="llama,mistral,qwen2,qwen3")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    text_file = a.text or os.path.join(a.work, "sample.txt")
    if not a.text:
        open(text_file, "w", encoding="utf-8").write(SAMPLE)
    text = open(text_file, encoding="utf-8").read()
    report = {"transformers": transformers.__version__, "torch": torch.__version__}
    for fam in a.families.split(","):
        d, tok = build(fam, a.work, text, 300)
        report[fam] = dict(hidden=compare_hidden(a.cp, d, tok, a.work),
                           eval=compare_eval(a.cp, d, tok, text_file, 64, 400))
        print(fam, json.dumps(report[fam], indent=1), flush=True)
    json.dump(report, open(os.path.join(a.work, "report.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
