#!/usr/bin/env bash
# Merges tiny random models of each family (made by `families.py models MODELS_DIR`) with the
# built jar (linear, slerp, ties, and a passthrough of slices for decoders and vision-language
# models' language models), all in one `multi` run, then loads each output with transformers:
# strict from_pretrained of the family's class and one forward pass; a linear merge is also
# checked tensor by tensor against 0.3 a + 0.7 b.
#   scripts/check-families.sh JAR MODELS_DIR WORK_DIR PYTHON [FAMILY...]
set -eu
JAR=$1; MODELS=$(cd "$2" && pwd); WORK=$3; PY=$4; shift 4
HERE=$(cd "$(dirname "$0")" && pwd)
FAMILIES=${*:-llama mistral qwen2 qwen2-tied qwen3 qwen3-moe mixtral gemma2 gemma3-text gemma3-vlm llava qwen2-vl phi3 gpt2 gpt-neox olmo olmo2 t5 bert}
mkdir -p "$WORK"
YAML=$WORK/all.yaml
: > "$YAML"
layers() { case $1 in gemma3-text|gemma3-vlm) echo 6;; *) echo 4;; esac; }
for f in $FAMILIES; do
  a=$MODELS/$f/a; b=$MODELS/$f/b; n=$(layers "$f")
  cat >> "$YAML" <<YAML
name: $f-linear
merge_method: linear
models:
  - {model: $a, parameters: {weight: 0.3}}
  - {model: $b, parameters: {weight: 0.7}}
---
name: $f-slerp
merge_method: slerp
base_model: $a
models:
  - {model: $a}
  - {model: $b}
parameters: {t: [0, 0.5, 1]}
---
name: $f-ties
merge_method: ties
base_model: $a
models:
  - {model: $b, parameters: {weight: 1.0, density: 0.5}}
parameters: {normalize: true}
---
YAML
  if [ "$f" != t5 ] && [ "$f" != bert ]; then
    cat >> "$YAML" <<YAML
name: $f-passthrough
merge_method: passthrough
slices:
  - sources: [{model: $a, layer_range: [0, 3]}]
  - sources: [{model: $b, layer_range: [$((n - 2)), $n]}]
---
YAML
  fi
done
sed -i '$ d' "$YAML"
java -jar "$JAR" multi "$YAML" --intermediate-dir "$WORK" --quiet
"$PY" "$HERE/families.py" checkall "$WORK" "$MODELS" 2>&1 | grep -E '^[a-z0-9-]+ [a-z]+: '
