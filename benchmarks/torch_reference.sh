#!/usr/bin/env bash
# Times merge-engine against benchmarks/torch_reference.py (the bench's linear and ties merges done
# the way mergekit does them, in PyTorch) on the bench's 1.5 GB models, warm, and compares outputs.
# Needs a Python with torch: on Debian `apt-get install python3-torch`, then PYTHON=/usr/bin/python3.
# The models come from benchmarks/run (run it once first). Writes benchmarks/results/torch_reference.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
if ! "$py" -c "import torch" 2>/dev/null; then
  echo "no torch in $py: install it (Debian: apt-get install python3-torch) and set PYTHON=/usr/bin/python3" >&2
  exit 2
fi
models=benchmarks/data/models-1500000000
if [ ! -f "$models/ft1/model.safetensors" ]; then
  echo "no bench models in $models: run benchmarks/run --methods linear --workers 1 --no-cold once" >&2
  exit 2
fi
[ -x target/merge-engine ] || mvn -B -q -DskipTests package
mkdir -p benchmarks/results
report=benchmarks/results/torch_reference.txt
: > "$report"
for method in linear ties; do
  cat "$models/base/model.safetensors" "$models/ft1/model.safetensors" > /dev/null
  start=$(date +%s.%N)
  "$py" benchmarks/torch_reference.py "$method" benchmarks/data/torch-$method "$models/base" "$models/ft1" > /dev/null
  torch_s=$(echo "$(date +%s.%N) - $start" | bc)
  best=
  for rep in 1 2; do
    rm -rf benchmarks/data/engine-$method
    cat "$models/base/model.safetensors" "$models/ft1/model.safetensors" > /dev/null
    start=$(date +%s.%N)
    JAVA_OPTS=-Xmx1g target/merge-engine benchmarks/data/$method.yaml benchmarks/data/engine-$method --quiet --out-shard-size 5B
    s=$(echo "$(date +%s.%N) - $start" | bc)
    if [ -z "$best" ] || [ "$(echo "$s < $best" | bc)" = 1 ]; then best=$s; fi
  done
  same=$("$py" benchmarks/torch_reference.py compare benchmarks/data/engine-$method/model.safetensors benchmarks/data/torch-$method/model.safetensors)
  printf '%-7s torch reference %6.1f s   merge-engine %5.1f s   %4.1fx faster   outputs: %s\n' \
    "$method" "$torch_s" "$best" "$(echo "$torch_s / $best" | bc -l)" "$same" | tee -a "$report"
done
