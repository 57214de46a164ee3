#!/usr/bin/env bash
# Run mdistiller's own, unmodified tools/train.py on the plugin's LaViD demo config for one epoch.
#
#   bash scripts/check_mdistiller_cuda.sh PATH/TO/MDISTILLER_CLONE [CONFIG]
#
# Needs: a CUDA GPU (mdistiller's trainer calls .cuda()), mdistiller or the logit-standardization fork
# installed in this environment (pip install --no-deps -e PATH/TO/MDISTILLER_CLONE tensorboardX), and
# the plugin with its demo extra (pip install -e ".[demo]"). The bridge is enabled for the run
# (python -m mdistiller_patches enable) and disabled again afterwards unless it was enabled before.
set -euo pipefail

usage() { echo "usage: $0 PATH/TO/MDISTILLER_CLONE [CONFIG]  (default config: configs/lavid/demo/res18.yaml)" >&2; }
MD="${1:-}"
CFG="${2:-configs/lavid/demo/res18.yaml}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python}"

if [[ -z "$MD" ]]; then usage; exit 64; fi
if [[ ! -f "$MD/tools/train.py" ]]; then echo "error: $MD/tools/train.py not found (a clone of mdistiller?)" >&2; exit 64; fi
if [[ ! -f "$HERE/$CFG" && ! -f "$CFG" ]]; then echo "error: config $CFG not found" >&2; exit 64; fi
[[ -f "$CFG" ]] || CFG="$HERE/$CFG"
if ! "$PY" -c "import mdistiller" 2>/dev/null; then
    echo "error: mdistiller is not installed here: $PY -m pip install --no-deps -e $MD tensorboardX" >&2; exit 2
fi
if ! "$PY" -c "import lavid_plugin, mdistiller_patches" 2>/dev/null; then
    echo "error: the plugin is not installed here: $PY -m pip install -e \"$HERE[demo]\"" >&2; exit 2
fi
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "error: no CUDA device: mdistiller's trainer moves everything to the GPU with .cuda(); run this on a GPU machine" >&2
    exit 3
fi

HOOK="$("$PY" -c "from mdistiller_patches.__main__ import pth_path; print(pth_path())")"
if [[ ! -f "$HOOK" ]]; then
    "$PY" -m mdistiller_patches enable >/dev/null
    trap '"$PY" -m mdistiller_patches disable >/dev/null' EXIT
fi
OUT="$(mktemp -d)"
cd "$HERE"  # the demo config's relative paths (./data/demo_birds) resolve from the project
echo "mdistiller: $("$PY" -c "from mdistiller_patches import mdistiller_variant; print(mdistiller_variant())"); config $CFG; output $OUT"
"$PY" "$MD/tools/train.py" --cfg "$CFG" SOLVER.EPOCHS 1 LOG.PREFIX "$OUT" LOG.WANDB False DATASET.NUM_WORKERS 2
LOG="$(find "$OUT" -name worklog.txt | head -n 1)"
if [[ -n "$LOG" ]] && grep -q "best_acc" "$LOG"; then
    echo "OK: one epoch of $CFG through mdistiller's own tools/train.py; worklog: $LOG"
else
    echo "error: no finished worklog under $OUT" >&2; exit 1
fi
