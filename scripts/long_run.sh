#!/usr/bin/env bash
# The standing background job of issue 14 (Quality): the decoder's long run, resumed from its last
# checkpoint or, where its folder is gone (a new machine), started from the shipped decoder. Low
# priority, stopped cleanly with a checkpoint before MINUTES have passed.
#
#   MINUTES=150 bash scripts/long_run.sh          # then: tail -f "$ADAIN_HOME/runs/q256-continue.log"
#
# RECIPE=continue (the default, since 2026-12-02): the shipped decoder's own recipe (256 px scale,
# 128 px crops, batch 4) continued on its own learning-rate schedule, with a fresh Adam state
# warmed up over 200 iterations. Why (docs/training-recipes.md): the shipped decoder's last
# 11,812 iterations at 256 px scale cut the style loss at 512 x 512 by 28 % (1.509 -> 1.090),
# while 859 iterations of the 512-scale recipe left it 1.7 % above. At 2,500 iterations this run
# was at +12 % style / -1 % content (the restart's disturbance, as in every fine-tune so far):
# evaluate it again at 5,000 and 10,000. RECIPE=crop512 resumes the 512-scale run (train512,
# 256 px crops, style targets from the crops, lr 5e-5; stopped at iteration 893).
set -euo pipefail
cd "$(dirname "$0")/.."
export ADAIN_HOME=${ADAIN_HOME:-$HOME/.cache/adain}
SHARED=${SHARED:-../shared}
MINUTES=${MINUTES:-150}
RECIPE=${RECIPE:-continue}
case "$RECIPE" in
continue)
    RUN=${RUN:-$ADAIN_HOME/runs/q256-continue}
    # lr 1e-4 / (1 + 5e-5 (24,070 + k)): where the shipped decoder's run stopped, and on from there
    recipe=(--content-dir "$SHARED/data/content/train" --style-dir "$SHARED/data/style/train"
        --load-size 256 --crop-size 128 --batch-size 4 --lr 4.54e-5 --lr-decay 2.27e-5 --warmup 200
        --seed 3 --max-iter 100000 --save-every 500 --image-every 2000) ;;
crop512)
    RUN=${RUN:-$ADAIN_HOME/runs/q512-crop-c256-lr5e-5}
    recipe=(--content-dir "$SHARED/data/content/train512" --style-dir "$SHARED/data/style/train512"
        --load-size 512 --crop-size 256 --batch-size 4 --lr 5e-5 --warmup 200
        --max-iter 20000 --save-every 250 --image-every 1000) ;;
*) echo "RECIPE must be continue or crop512, not $RECIPE" >&2; exit 2 ;;
esac
mkdir -p "$ADAIN_HOME/runs"
start=()
if [ ! -f "$RUN/checkpoint.pt" ]; then
    # a fresh start from the decoder shipped at this commit, kept outside the tree so that shipping
    # a new one does not change what the run started from
    base="$ADAIN_HOME/base-decoder-$(git rev-parse --short HEAD).safetensors"
    cp src/adain/decoder.safetensors "$base"
    start=(--init-decoder "$base")
fi
nohup nice -n 19 .venv/bin/adain train "${recipe[@]}" --out-dir "$RUN" --resume "${start[@]}" \
    --time-limit "$MINUTES" -q >>"$RUN.log" 2>&1 &
echo "training in the background (pid $!): $RUN, log $RUN.log"
