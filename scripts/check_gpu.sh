#!/usr/bin/env bash
# Every GPU check of the plugin in one short run (a CUDA machine with torch installed):
# the card, one CUDA epoch of the demo config through tools/train.py (bf16 autocast, channels_last),
# the training-step, extraction and loader benchmarks at the paper's 224 px / batch 16, the demo with
# DATASET.DECODE_ON_DEVICE, and Stage 1b's image-teacher bench at realistic width.
#   PYTHONPATH=. bash scripts/check_gpu.sh [OUT]
set -euo pipefail
OUT="${1:-/tmp/lavid_gpu}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
"$PY" - <<'PY'
import torch; assert torch.cuda.is_available(), "no CUDA device"; print("card:", torch.cuda.get_device_name(0), "torch", torch.__version__)
PY
# the demo's images, and a random 4-question signature of its 12 classes (the MiniLM extra is not needed here)
"$PY" - "$OUT" <<'PY'
import sys, torch
from lavid_plugin.data.demo_birds import demo_classes, ensure_demo_dataset
from lavid_plugin.signature.llm_signature import LLMSignature
ensure_demo_dataset(f"{sys.argv[1]}/birds")
names = [n for n, _ in demo_classes()]
probs = torch.softmax(torch.randn(len(names), 3, 3), -1).reshape(len(names), 9)
LLMSignature(names, probs, [0, 3, 6, 9]).save(f"{sys.argv[1]}/sig.safetensors")
PY
"$PY" tools/train.py --cfg configs/lavid/demo/res18.yaml SOLVER.EPOCHS 2 DATASET.ROOT "$OUT/birds" \
    LAVID.SIGNATURE "$OUT/sig.safetensors" LOG.PREFIX "$OUT/runs" DATASET.NUM_WORKERS 4
grep -E "^(epoch|test_acc|loss_lavid):" "$OUT"/runs/demo/*/worklog.txt | tail -6
# the same epochs with the training JPEG/PNG decoding and view on the GPU
"$PY" tools/train.py --cfg configs/lavid/demo/res18.yaml SOLVER.EPOCHS 2 DATASET.ROOT "$OUT/birds" \
    LAVID.SIGNATURE "$OUT/sig.safetensors" LOG.PREFIX "$OUT/runs" DATASET.NUM_WORKERS 4 \
    DATASET.DECODE_ON_DEVICE True EXPERIMENT.NAME decode_on_device
grep -E "^(epoch|test_acc):" "$OUT"/runs/demo/decode_on_device/worklog.txt | tail -2
"$PY" scripts/bench_train.py --size 224 --batch 16 --rounds 30
"$PY" scripts/bench_extract.py --prompts 1000 --vocab 32000 --hidden 2048 --layers 8 --batch-size 25
"$PY" scripts/bench_data.py --images 200 --sizes 224 --repeats 1 --workers 8
# Stage 1b: a bf16 LLaVA-shaped model of realistic width (CLIP-L-like tower at 336 px, 4096-wide language model)
"$PY" scripts/bench_image_teacher.py --images 64 --batch-size 16 --image-size 336 --vision-hidden 1024 \
    --hidden 4096 --layers 4 --aspects 10
