#!/usr/bin/env bash
# Trains, exports and evaluates the shipped default model (affect-small-v6) from a clean
# checkout of this repository (with its git history), and ships it:
#   bash training/recipes/default_model.sh [DATA_ROOT] [RUN_DIR]
# (after the README's install; PYTHON defaults to .venv/bin/python). Every training option
# is in training/recipes/default.toml, which the checkpoint keeps. Stages (training/
# train_experts.py): the face expert starts from affect-small-v5's face pathway (taken
# from git; its own recipe: training/recipes/affect_small_v5.sh), the voice expert trains
# on RAVDESS actors 1-16, then the fusion's confidence heads on synthetic sequences.
# Validation and evaluation use only held-out identities: FER2013Valid and RAVDESS actors
# 17-20 (training/recipes/evaluate_and_ship.sh). Writes RUN_DIR/default.onnx and RUN_DIR/eval/*, then models/default.onnx and its
# card models/default.md.
set -euo pipefail
data=${1:-../shared/data}
run=${2:-runs/v6}
python=${PYTHON:-.venv/bin/python}
mkdir -p "$run"
V5_COMMIT=d630e61  # the last commit that shipped affect-small-v5
git show "$V5_COMMIT:models/default.onnx" > "$run/affect-small-v5.onnx"
recipe="$run/recipe.toml"  # the recipe, pointing at this run's copy of v5
sed "s|^source = .*|source = \"$run/affect-small-v5.onnx\"|" training/recipes/default.toml > "$recipe"
start=$(date +%s)
"$python" -m training.train_experts "$recipe" --data-root "$data" --out "$run"
echo "training took $(( ($(date +%s) - start) / 60 )) min on $(nproc) cores" | tee "$run/time.txt"

"$python" -m training.export "$run/experts.pt" -o "$run/default.onnx" --name affect-small-v6
bash training/recipes/evaluate_and_ship.sh "$data" "$run"
