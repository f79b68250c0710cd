#!/usr/bin/env bash
# affect-small-v5 (the paper's one-LSTM fusion; v6's face expert starts from its face
# pathway): trains it from training/recipes/affect_small_v5.toml (80 min on 2 cores), then
# exports, evaluates and ships it as models/default.onnx with its card, from a clean checkout:
#   bash training/recipes/affect_small_v5.sh [DATA_ROOT] [RUN_DIR] [--set KEY=VALUE ...]
# (after the README's install; PYTHON defaults to .venv/bin/python; v5 itself is
# `git show d630e61:models/default.onnx`). Stages that finished in RUN_DIR are kept
# (affect-train --resume), so an interrupted run continues; use a fresh RUN_DIR to start over.
set -euo pipefail
data=${1:-../shared/data}
run=${2:-runs/default}
shift $(( $# < 2 ? $# : 2 ))
python=${PYTHON:-.venv/bin/python}
mkdir -p "$run"
# affect-train --config ...
"$python" -m training.train --config training/recipes/affect_small_v5.toml \
    --set data.root="$data" --out "$run" --resume "$@"
seconds=$(( $(cat "$run/face/seconds") + $(cat "$run/voice/seconds") + $(cat "$run/fused/seconds") ))
echo "training took $(( seconds / 60 )) min on $(nproc) cores" | tee "$run/time.txt"

"$python" -m training.export "$run/fused/best.pt" -o "$run/default.onnx" --name affect-small-v5
bash training/recipes/evaluate_and_ship.sh "$data" "$run"
