"""Writes tiny random Llama, Qwen2 and Qwen3 models (base + 2 fine-tunes each, float32 or bf16) with
a copy of a given tokenizer, for checking `moe` outputs by hand:
    python scripts/make_tiny_moe_inputs.py TOKENIZER_DIR OUT_DIR
"""
import os
import shutil
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

tok_dir, out = sys.argv[1], sys.argv[2]
common = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              vocab_size=96, bos_token_id=1, eos_token_id=2, max_position_embeddings=256, tie_word_embeddings=False)
for fam, (C, M, extra) in {"llama": (LlamaConfig, LlamaForCausalLM, {}),
                            "qwen2": (Qwen2Config, Qwen2ForCausalLM, {}),
                            "qwen3": (Qwen3Config, Qwen3ForCausalLM, {"head_dim": 8})}.items():
    for i, name in enumerate(["base", "e1", "e2"]):
        torch.manual_seed(100 * i + len(fam))
        m = M(C(**common, **extra))
        with torch.no_grad():
            for p in m.parameters():
                p.normal_(0, 0.2)
        d = os.path.join(out, fam, name)
        m.to(torch.bfloat16 if fam == "qwen2" else torch.float32).save_pretrained(d)
        for f in os.listdir(tok_dir):
            if f.startswith("tokenizer") or f == "special_tokens_map.json":
                shutil.copy(os.path.join(tok_dir, f), d)
