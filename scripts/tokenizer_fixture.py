"""Writes the tokenizer fixture of PromptTokenizerTest: two small tokenizers trained here (a GPT-2
style byte-level BPE, and a Llama style Metaspace BPE with byte fallback), each with added tokens,
and the ids Python's `tokenizers` gives a few hundred strings (add_special_tokens=False).
    python scripts/tokenizer_fixture.py src/test/resources/tokenize
"""
import json
import os
import random
import sys

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = random.Random(1234)

corpus = [
    "The quick brown fox jumps over the lazy dog.", "Hello, world! How are you today?",
    "def f(x):\n    return x * 2  # doubles", "Ünïcödé tëxt wïth àccents, ß and Œ.", "日本語のテキストと中文文本。",
    "Emoji: 🙂🚀🔥 and ❤️ mixed with words.", "Numbers 1234567890 3.14159 -42 1e10", "مرحبا بالعالم", "Привет, мир!",
    "tabs\tand\nnewlines\r\n  and   spaces", "<html><body>markup</body></html>", "snake_case camelCase kebab-case",
] * 40
specials = [AddedToken("<|im_start|>", special=True), AddedToken("<|im_end|>", special=True),
            AddedToken("[TOOL]", special=False, normalized=False), AddedToken(" lstripped", lstrip=True, special=False)]


def byte_level():
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    t.train_from_iterator(corpus, tr)
    t.add_special_tokens(specials[:2])
    t.add_tokens(specials[2:])
    return t


def metaspace():
    t = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    t.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    t.pre_tokenizer = None
    t.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    byte_tokens = ["<0x%02X>" % i for i in range(256)]
    tr = trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<s>", "</s>"] + byte_tokens)
    t.train_from_iterator(corpus, tr)
    t.add_special_tokens(specials[:2])
    t.add_tokens(specials[2:])
    return t


def strings():
    pieces = ["hello", "world", "Ünïcödé", "日本語", "🙂", "🚀🔥", "❤️", "مرحبا", "Привет", "def", "return", "x*2", "3.14",
              "<|im_start|>", "<|im_end|>", "[TOOL]", " lstripped", "\t", "\n", "\r\n", "  ", "   ", "é", "ß", "ÿ", "\u200b",
              "snake_case", "camelCase", "<s>", "</s>", "zzz", "qwerty", "ǅ", "𝔘𝔫𝔦", "ａｂｃ", "naïve café"]
    out = ["", " ", "  leading", "trailing  ", "a", "hello world", "<s>hello", "<s>", "<|im_start|>user\nHi<|im_end|>",
           "[TOOL] call [TOOL]", "x lstripped y", "\n\n\n", "🙂🙂🙂", "日本語のテキスト"]
    while len(out) < 160:
        k = rng.randint(1, 8)
        s = ""
        for _ in range(k):
            s += rng.choice(pieces) + rng.choice(["", " ", " ", "  ", "\n", ",", "."])
        out.append(s)
    return out


cases = strings()
for name, tok in [("bytelevel", byte_level()), ("metaspace", metaspace())]:
    tok.save(os.path.join(out, name + ".json"))
    ids = [tok.encode(s, add_special_tokens=False).ids for s in cases]
    json.dump({"strings": cases, "ids": ids}, open(os.path.join(out, name + ".ids.json"), "w"), ensure_ascii=False)
