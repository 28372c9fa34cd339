#!/usr/bin/env bash
# A short GPU check: training (bf16 and fp16 autocast), evaluation, export and prediction on CUDA,
# then a 2-process NCCL run when there are 2 GPUs. Run from the repository root on a machine with
# a GPU and ../shared/data:   bash benchmarks/gpu_smoke.sh
# CONFIG picks the recipe (configs/default.yaml reads ytf68's images too; a seed config such as
# configs/seeds/000_resnet18.yaml needs only fkd15-ytf), SMOKE_OUT the output folder, PYTHON the interpreter.
# Prints each step's figures; exits non-zero at the first failure.
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
OUT=${SMOKE_OUT:-runs/gpu_smoke}
CFG="--config ${CONFIG:-configs/default.yaml} --set train.epochs=3 --set train.device=cuda --quiet"
# no GPU: one line, not a traceback
if ! $PY -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_smoke.sh: no CUDA GPU here; this script needs one" >&2
  exit 1
fi
$PY -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
for amp in bf16 fp16; do
  $PY -m facekeypoints.cli train $CFG --set train.amp=$amp --out "$OUT/$amp" | $PY -c \
    "import json,sys; s=json.load(sys.stdin); print('train $amp:', s['device'], s['epochs'], 'epochs', s['minutes'], 'min, val RMSE', round(s['best_val_rmse'], 3))"
done
$PY -m facekeypoints.cli evaluate --model "$OUT/bf16/best.pt" --split val --device cuda | head -3
$PY -m facekeypoints.cli export --model "$OUT/bf16/best.pt" -o "$OUT/model.onnx" --device cuda
$PY -m facekeypoints.cli predict "$($PY -c 'from matplotlib import cbook; print(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))')" \
  --model "$OUT/bf16/best.pt" --device cuda --detector cnn -o "$OUT/predict" --quiet  # our detector: no cascade file
# bench times the Haar detector too, whose cascade files some OpenCV builds leave out
if $PY -c 'import cv2, os, sys; sys.exit(not os.path.exists(cv2.data.haarcascades + "haarcascade_frontalface_default.xml"))'; then
  $PY -m facekeypoints.cli bench --device cuda --repeats 20 --jitter-frames 0
else
  echo "bench: skipped (this OpenCV ships no Haar cascade files)"
fi
if [ "$($PY -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
  $PY -m torch.distributed.run --standalone --nproc_per_node 2 -m facekeypoints.cli train $CFG --out "$OUT/ddp" | \
    $PY -c "import json,sys; s=json.load(sys.stdin); print('DDP (NCCL):', s['processes'], 'processes, val RMSE', round(s['best_val_rmse'], 3))"
fi
echo "gpu smoke: all steps passed"
