#!/usr/bin/env bash
# Evaluates an exported model on the held-out sets and ships it with its card; the last
# part of every default-model recipe:
#   bash training/recipes/evaluate_and_ship.sh DATA_ROOT RUN_DIR
# reads RUN_DIR/default.onnx and RUN_DIR/time.txt; writes RUN_DIR/eval/*, then
# models/default.onnx and models/default.md (training/model_card.py). Quotes of the
# voice benchmarks need the dev extra (opensmile, scikit-learn) and are skipped without it.
set -euo pipefail
data=$1
run=$2
python=${PYTHON:-.venv/bin/python}
eval=("$python" -m training.evaluate --model "$run/default.onnx")
"${eval[@]}" --dataset "ferplus:$data/ferplus" --split FER2013Valid --mask-voice --out "$run/eval/ferplus"
"${eval[@]}" --dataset "ravdess:$data/ravdess-speech-16k" --split valid --mask-face --out "$run/eval/ravdess"
"${eval[@]}" --dataset "synthetic:$data" --split valid --out "$run/eval/synthetic-fused"
"${eval[@]}" --dataset "synthetic:$data" --split valid --mask-voice --out "$run/eval/synthetic-face"
"${eval[@]}" --dataset "synthetic:$data" --split valid --mask-face --out "$run/eval/synthetic-voice"
"$python" -m app.cli analyze "$data"/cremad-sample/*.flv --out "$run/eval/cremad" --model "$run/default.onnx" --no-progress
quote() {  # quote NAME COMMAND...: run COMMAND, keep "$ COMMAND" and its output in eval/NAME.txt
    local name=$1
    shift
    { echo "\$ $*"; "$@"; } > "$run/eval/$name.txt"
}
if "$python" -c "import opensmile, sklearn" 2>/dev/null; then
    quote voice_baseline "$python" benchmarks/voice_baseline.py --data "$data/ravdess-speech-16k" \
        --model "$run/default.onnx" --gains-db 0 -30 -20 -10 10 20
fi
quote voice_heard "$python" benchmarks/voice_heard.py --data "$data/cremad-sample" --model "$run/default.onnx"
quote fusion_probe "$python" -m training.probes.fusion_probe --model "$run/default.onnx" --data "$data"
"$python" -m training.model_card --model "$run/default.onnx" --evals "$run/eval" --time "$run/time.txt" --clips "$run/eval/cremad" --out models/default.onnx
