#!/usr/bin/env python3
"""Tiny random models of the architecture families merge-engine is tested on.

  families.py fixtures DIR      write, per family, config.json and tensors.json (names, shapes,
                                dtypes in file order) under DIR/<family>/: the test fixtures
  families.py models DIR        save two tiny random models per family (DIR/<family>/a, b) with
                                transformers, for merging by hand
  families.py check DIR FAMILY  load DIR strictly with the family's class and run one forward pass
  families.py linear OUT A B WA WB   check that every tensor of OUT is WA*A + WB*B
  families.py checkall WORK MODELS   check every WORK/<family>-<method> output (one process, one import)

Needs torch and transformers (5.x). The fixtures are generated once and committed; the Java tests
never run Python.
"""
import json
import os
import struct
import sys

import torch
import transformers as tf


def llama():
    return tf.LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128), tf.LlamaForCausalLM


def mistral():
    return tf.MistralConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                            sliding_window=64), tf.MistralForCausalLM


def qwen2(tied):
    return tf.Qwen2Config(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                          tie_word_embeddings=tied, use_sliding_window=True, sliding_window=64,
                          max_window_layers=2), tf.Qwen2ForCausalLM


def qwen3():
    return tf.Qwen3Config(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
                          use_sliding_window=True, sliding_window=64, max_window_layers=2), tf.Qwen3ForCausalLM


def qwen3_moe():
    return tf.Qwen3MoeConfig(vocab_size=96, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
                             num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                             num_experts=4, num_experts_per_tok=2, decoder_sparse_step=1, mlp_only_layers=[1],
                             max_position_embeddings=128), tf.Qwen3MoeForCausalLM


def mixtral():
    return tf.MixtralConfig(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
                            num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                            num_experts_per_tok=2, max_position_embeddings=128), tf.MixtralForCausalLM


def gemma2():
    return tf.Gemma2Config(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
                           sliding_window=32), tf.Gemma2ForCausalLM


def gemma3_text():
    return tf.Gemma3TextConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=6,
                               num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                               max_position_embeddings=128, sliding_window=32), tf.Gemma3ForCausalLM


def gemma3_vlm():
    text = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=6, num_attention_heads=4,
                num_key_value_heads=2, head_dim=8, max_position_embeddings=256, sliding_window=32)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                  image_size=32, patch_size=8)
    return tf.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                           image_token_index=299, boi_token_index=297, eoi_token_index=298), tf.Gemma3ForConditionalGeneration


def llava():
    text = dict(model_type="llama", vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    vision = dict(model_type="clip_vision_model", hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                  num_attention_heads=2, image_size=32, patch_size=8, projection_dim=16)
    return tf.LlavaConfig(text_config=text, vision_config=vision, image_token_index=127), tf.LlavaForConditionalGeneration


def qwen2_vl():
    text = dict(vocab_size=160, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=256, rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0})
    vision = dict(depth=2, embed_dim=16, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=4,
                  spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    return tf.Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=150, video_token_id=151,
                            vision_start_token_id=152), tf.Qwen2VLForConditionalGeneration


def phi3():
    return tf.Phi3Config(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=0), tf.Phi3ForCausalLM


def gpt2():
    return tf.GPT2Config(vocab_size=96, n_embd=32, n_layer=4, n_head=4, n_positions=128), tf.GPT2LMHeadModel


def gpt_neox():
    return tf.GPTNeoXConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                            num_attention_heads=4, max_position_embeddings=128), tf.GPTNeoXForCausalLM


def olmo():
    return tf.OlmoConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=0), tf.OlmoForCausalLM


def olmo2():
    return tf.Olmo2Config(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                          pad_token_id=0), tf.Olmo2ForCausalLM


def t5():
    return tf.T5Config(vocab_size=96, d_model=32, d_kv=8, d_ff=64, num_layers=3, num_decoder_layers=2,
                       num_heads=4, decoder_start_token_id=0), tf.T5ForConditionalGeneration


def bert():
    return tf.BertConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                         num_attention_heads=4, max_position_embeddings=128), tf.BertForMaskedLM


FAMILIES = {
    "llama": llama, "mistral": mistral, "qwen2": lambda: qwen2(False), "qwen2-tied": lambda: qwen2(True),
    "qwen3": qwen3, "qwen3-moe": qwen3_moe, "mixtral": mixtral, "gemma2": gemma2, "gemma3-text": gemma3_text,
    "gemma3-vlm": gemma3_vlm, "llava": llava, "qwen2-vl": qwen2_vl, "phi3": phi3, "gpt2": gpt2,
    "gpt-neox": gpt_neox, "olmo": olmo, "olmo2": olmo2, "t5": t5, "bert": bert,
}

# Files that travel with a model, as a processor would save them (contents are placeholders).
TAGALONG = {
    "gemma3-vlm": ["preprocessor_config.json", "processor_config.json"],
    "llava": ["preprocessor_config.json"],
    "qwen2-vl": ["preprocessor_config.json", "video_preprocessor_config.json"],
}


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    entries = sorted(h.items(), key=lambda kv: kv[1]["data_offsets"][0])
    return {k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in entries}


def build(name, seed):
    torch.manual_seed(seed)
    cfg, cls = FAMILIES[name]()
    model = cls(cfg).eval()
    return model


def save(name, out, seed):
    model = build(name, seed)
    model.save_pretrained(out)
    for f in TAGALONG.get(name, []):
        with open(os.path.join(out, f), "w") as fh:
            json.dump({"family": name, "file": f}, fh, indent=2)
            fh.write("\n")


def fixtures(root):
    for name in FAMILIES:
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        tmp = os.path.join(d, "_model")
        save(name, tmp, 0)
        with open(os.path.join(tmp, "config.json"), "rb") as f:
            cfg = f.read()
        with open(os.path.join(d, "config.json"), "wb") as f:
            f.write(cfg)
        with open(os.path.join(d, "tensors.json"), "w") as f:
            json.dump(header(os.path.join(tmp, "model.safetensors")), f, indent=1)
            f.write("\n")
        for extra in os.listdir(tmp):
            if extra not in ("config.json", "model.safetensors"):
                os.replace(os.path.join(tmp, extra), os.path.join(d, extra))
        for x in os.listdir(tmp):
            os.remove(os.path.join(tmp, x))
        os.rmdir(tmp)
        print(name, "ok")


def models(root):
    for name in FAMILIES:
        for tag, seed in (("a", 1), ("b", 2)):
            save(name, os.path.join(root, name, tag), seed)
        print(name, "ok")


def inputs(name, model):
    cfg = model.config
    if name == "t5":
        ids = torch.randint(0, 90, (1, 6))
        return dict(input_ids=ids, decoder_input_ids=ids[:, :4])
    text = getattr(cfg, "text_config", cfg)
    return dict(input_ids=torch.randint(0, min(text.vocab_size, 90), (1, 6)))


def checkall(work, models):
    for out in sorted(os.listdir(work)):
        path = os.path.join(work, out)
        if not os.path.isdir(path) or out.startswith("."):
            continue
        family, method = out.rsplit("-", 1)
        try:
            msg = check(path, family)
            if method == "linear":
                msg += "; " + linear(path, os.path.join(models, family, "a"), os.path.join(models, family, "b"), 0.3, 0.7)
        except BaseException as e:  # one family's failure must not hide the others'
            msg = f"FAILED: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:400]
        print(f"{family} {method}: {msg}", flush=True)


def check(path, name):
    _, cls = FAMILIES[name]()
    model, info = cls.from_pretrained(path, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v and k != "error_msgs" or (k == "error_msgs" and v)}
    if problems:
        raise SystemExit(f"{name}: not a strict load: {problems}")
    with torch.no_grad():
        out = model(**inputs(name, model))
    logits = out.logits
    if not torch.isfinite(logits).all():
        raise SystemExit(f"{name}: non-finite logits")
    return f"loaded strictly, logits {tuple(logits.shape)}"


def linear(out, a, b, wa, wb):
    from safetensors.torch import load_file
    o, x, y = load_file(os.path.join(out, "model.safetensors")), load_file(os.path.join(a, "model.safetensors")), \
        load_file(os.path.join(b, "model.safetensors"))
    if set(o) != set(x):
        raise SystemExit(f"tensor names differ: {sorted(set(o) ^ set(x))[:5]}")
    worst = max(float((o[k].float() - (wa * x[k].float() + wb * y[k].float())).abs().max()) for k in o)
    if worst > 1e-5:
        raise SystemExit(f"linear: max deviation {worst}")
    return f"{len(o)} tensors are 0.3 a + 0.7 b (max deviation {worst:.2e})"


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "fixtures":
        fixtures(sys.argv[2])
    elif cmd == "models":
        models(sys.argv[2])
    elif cmd == "check":
        print(check(sys.argv[2], sys.argv[3]))
    elif cmd == "linear":
        print(linear(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6])))
    elif cmd == "checkall":
        checkall(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
