#!/usr/bin/env bash
# Trains, exports and evaluates the shipped default model (affect-small-v7) from a clean
# checkout of this repository (with its git history: the face expert starts from
# affect-small-v5, taken from commit d630e61), and ships it:
#   bash training/recipes/default_model.sh [DATA_ROOT] [RUN_DIR] [--set KEY=VALUE ...]
# (after the README's install; PYTHON defaults to .venv/bin/python). Every training option
# is in training/recipes/default.toml, which the checkpoint keeps. Validation and evaluation
# use only held-out identities: FER2013Valid and RAVDESS actors 17-20
# (training/recipes/evaluate_and_ship.sh). Writes RUN_DIR/default.onnx and RUN_DIR/eval/*,
# then models/default.onnx and its card models/default.md.
set -euo pipefail
data=${1:-../shared/data}
run=${2:-runs/v7}
shift $(( $# < 2 ? $# : 2 ))
python=${PYTHON:-.venv/bin/python}
mkdir -p "$run"
start=$(date +%s)
# affect-train --config ...
"$python" -m training.train --config training/recipes/default.toml --set data.root="$data" \
    --out "$run" "$@"
echo "training took $(( ($(date +%s) - start) / 60 )) min on $(nproc) cores" | tee "$run/time.txt"

"$python" -m training.export "$run/experts.pt" -o "$run/default.onnx" --name affect-small-v7
bash training/recipes/evaluate_and_ship.sh "$data" "$run"
