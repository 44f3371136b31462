#!/usr/bin/env bash
# The standing background job of issue 14 (Quality): the decoder's long run, resumed from its last
# checkpoint or, where its folder is gone (a new machine), started from the shipped decoder. Low
# priority, stopped cleanly with a checkpoint before MINUTES have passed.
#
#   MINUTES=150 bash scripts/long_run.sh     # then: tail -f "$ADAIN_HOME/runs/<run folder>.log"
#   CORE=0 CROP=512 TARGETS=whole BATCH=2 LR=1e-5 MIX=1 REACH=1 MINUTES=140 bash scripts/long_run.sh
#                                            # the whole-photo blend, the standing run of sessions 31-33
#
# Every variable, and the run folder it names (what each recipe measured: docs/training-recipes.md):
#   MINUTES    --time-limit (default 150)
#   CORE       pin to that core with one thread (two runs side by side: CORE=0 and CORE=1)
#   PRECISION  --precision; not part of the recipe, a run resumes in another
#   RUN        another run folder than the one the recipe names
#   RECIPE     mixed512 (the default since session 14) or an earlier one: crop512 (sessions 10-13,
#              the paper's scale), whole512, scales512, jitter512, cached512, continue (256 px scale)
#   LR         the base rate (default 5e-5; the schedule divides it by 1 + 5e-5 x iteration), -lr$LR
# mixed512's variants (its flags: scripts/mixed_recipe.sh, shared with device_chunk.sh):
#   TWICE512   train512 linked twice, so its paintings are drawn about as often as train/'s (default 1), -x2
#   CROP, TARGETS, BATCH   --crop-size (256), --style-targets, --batch-size (4); -c$CROP-$TARGETS-b$BATCH
#   MIX, REACH --mix-styles, --mix-reach (each 0.5 unless set; MIX= switches blending off)
#   GAIN, BOLD --style-gain, --bold-styles
#   JITTER, STYLE_WEIGHT, SEED, LAYERS, CLAMP=1   --jitter-styles, --style-weight, --seed,
#              --style-layer-weights, --clamp-output
#   DISTIL, DISTIL_ALPHA   --distil-feedback, --distil-alpha (0.93 unless set)
#   MATCH, MATCH_LAYERS    --decoder-match-weight, --decoder-match-layers (session 47: the decoder's
#              ReLUs pulled towards what the run's starting decoder holds decoding each style; needs
#              TARGETS=whole), -match$MATCH
#   MATCH_ON   --decoder-match (session 48: the match switched on while training, the same targets;
#              needs TARGETS=whole), -on$MATCH_ON
#   WIDTH, WIDEN, NEWLR    --decoder-width, --widen, --new-channel-lr
#   MIRROR=1   the photos and their mirror images (scripts/mirror_images.py, made once in
#              $ADAIN_HOME/content-train512-mirror): twice the photos, each framed two ways, -mirror
#   HOLDOUT    a share of the paintings kept out of training, by their originals, and 20 of them
#              linked for ranking in $ADAIN_HOME/held-out$HOLDOUT-styles (scripts/held_out.py), with
#              ten of the paper's test photos in $ADAIN_HOME/held-out-eval/content
set -euo pipefail
cd "$(dirname "$0")/.."
export ADAIN_HOME=${ADAIN_HOME:-$HOME/.cache/adain}
SHARED=${SHARED:-../shared}
MINUTES=${MINUTES:-150}
RECIPE=${RECIPE:-mixed512}
case "$RECIPE" in
continue)
    RUN=${RUN:-$ADAIN_HOME/runs/q256-continue-lr1e-5}
    recipe=(--content-dir "$SHARED/data/content/train" --style-dir "$SHARED/data/style/train"
        --load-size 256 --crop-size 128 --batch-size 4 --lr 1e-5 --lr-decay 5e-6 --warmup 200
        --seed 3 --max-iter 100000 --save-every 500 --image-every 2000) ;;
cached512)
    # the crop512 recipe on the cheaper cached step (the style targets still from 256 px crops, 16 per
    # style image cut from one encoding), with the style weight as a lever: STYLE_WEIGHT (default 20)
    STYLE_WEIGHT=${STYLE_WEIGHT:-20}
    RUN=${RUN:-$ADAIN_HOME/runs/q512-cached-crop-c256-lr5e-5-sw$STYLE_WEIGHT}
    recipe=(--content-dir "$SHARED/data/content/train512" --style-dir "$SHARED/data/style/train512"
        --load-size 512 --crop-size 256 --batch-size 4 --lr 5e-5 --warmup 200
        --style-weight "$STYLE_WEIGHT" --feature-cache "$ADAIN_HOME/features" --ema 0.999
        --max-iter 20000 --save-every 250 --image-every 1000) ;;
whole512)
    RUN=${RUN:-$ADAIN_HOME/runs/q512-whole-c256-lr5e-5}
    recipe=(--content-dir "$SHARED/data/content/train512" --style-dir "$SHARED/data/style/train512"
        --load-size 512 --crop-size 256 --batch-size 4 --lr 5e-5 --warmup 200 --style-targets whole
        --feature-cache "$ADAIN_HOME/features" --ema 0.999 --max-iter 20000 --save-every 250 --image-every 1000) ;;
scales512)
    # crop512 with the style crops cut at two scales of each painting, its short side at 512 and at
    # 256 px (session 13: the styles the 512 px recipe made worse lost their fine-scale contrast)
    RUN=${RUN:-$ADAIN_HOME/runs/q512-scales-c256-lr5e-5}
    recipe=(--content-dir "$SHARED/data/content/train512" --style-dir "$SHARED/data/style/train512"
        --load-size 512 --crop-size 256 --batch-size 4 --lr 5e-5 --warmup 200 --style-scales 512,256
        --feature-cache "$ADAIN_HOME/features" --ema 0.999 --max-iter 20000 --save-every 250 --image-every 1000) ;;
mixed512)
    TWICE512=${TWICE512-1}
    source scripts/mixed_recipe.sh
    STYLES=$ADAIN_HOME/styles-mixed${TWICE512:+-x2}
    if [ -n "${HOLDOUT:-}" ]; then  # the subset has its own feature cache, built once
        STYLES=$STYLES-held-out$HOLDOUT
        d=$SHARED/data/style
        .venv/bin/python scripts/held_out.py "$d/train512:train512:$d/MANIFEST512.csv" \
            "$d/train:train:$d/MANIFEST.csv" ${TWICE512:+"$d/train512:train512-again:$d/MANIFEST512.csv"} \
            --share "$HOLDOUT" --train "$STYLES" --held-out "$ADAIN_HOME/held-out$HOLDOUT-styles" --max 20
        # and the first ten of the paper's test photos beside them: 200 pairs to rank on
        mkdir -p "$ADAIN_HOME/held-out-eval/content"
        find "$(realpath "$SHARED/images/content")" -maxdepth 1 -type f | sort | head -10 |
            xargs -I{} ln -sfn {} "$ADAIN_HOME/held-out-eval/content/"
    else
        mixed_styles "$STYLES" "$SHARED/data/style/train512" "$SHARED/data/style/train" "$TWICE512"
    fi
    CONTENT=$SHARED/data/content/train512
    if [ -n "${MIRROR:-}" ]; then
        .venv/bin/python scripts/mirror_images.py "$CONTENT" "$ADAIN_HOME/content-train512-mirror"
        CONTENT=$ADAIN_HOME/content-train512-mirror
    fi
    variant=()  # the flags of the variants above that are switched on
    [ -n "${JITTER:-}" ] && variant+=(--jitter-styles "$JITTER")
    [ -n "${STYLE_WEIGHT:-}" ] && variant+=(--style-weight "$STYLE_WEIGHT")
    [ -n "${SEED:-}" ] && variant+=(--seed "$SEED")
    [ -n "${LAYERS:-}" ] && variant+=(--style-layer-weights "$LAYERS")
    [ -n "${CLAMP:-}" ] && variant+=(--clamp-output)
    [ -n "${WIDEN:-}" ] && variant+=(--widen "$WIDEN")
    [ -n "${NEWLR:-}" ] && variant+=(--new-channel-lr "$NEWLR")
    [ -n "${MATCH:-}" ] && variant+=(--decoder-match-weight "$MATCH")
    [ -n "${MATCH_ON:-}" ] && variant+=(--decoder-match "$MATCH_ON")
    [ -n "${MATCH_LAYERS:-}" ] && variant+=(--decoder-match-layers "$MATCH_LAYERS")
    [ -n "${DISTIL:-}" ] && DISTIL_ALPHA=${DISTIL_ALPHA:-0.93} && variant+=(--distil-feedback "$DISTIL" --distil-alpha "$DISTIL_ALPHA")
    LR=${LR:-5e-5}
    BATCH=${BATCH:-4}
    batch_tag=; [ "$BATCH" = 4 ] || batch_tag=-b$BATCH
    RUN=${RUN:-$ADAIN_HOME/runs/q512-mixed${JITTER:+-$JITTER}${TWICE512:+-x2}-c$CROP${TARGETS:+-$TARGETS}$batch_tag-lr$LR${STYLE_WEIGHT:+-sw$STYLE_WEIGHT}${MIX:+-mix$MIX}${REACH:+-reach$REACH}${GAIN:+-gain$GAIN}${BOLD:+-bold$BOLD}${SEED:+-seed$SEED}${LAYERS:+-lw$LAYERS}${CLAMP:+-clamp}${WIDTH:+-w$WIDTH}${WIDEN:+-$WIDEN}${NEWLR:+-nlr$NEWLR}${HOLDOUT:+-ho$HOLDOUT}${DISTIL:+-distil${DISTIL}a${DISTIL_ALPHA}}${MIRROR:+-mirror}${MATCH:+-match$MATCH}${MATCH_ON:+-on$MATCH_ON}${MATCH_LAYERS:+-at$MATCH_LAYERS}}
    # the iteration budget is not part of the recipe (a resumed run takes a new one), and the kept
    # snapshots are what the means of weights are made of
    recipe=(--content-dir "$CONTENT" --style-dir "$STYLES" "${MIXED_RECIPE[@]}"
        --batch-size "$BATCH" --lr "$LR" "${variant[@]}" --feature-cache "$ADAIN_HOME/features"
        --max-iter 40000 --save-every 250 --keep-every 500 --image-every 1000) ;;
jitter512)
    # crop512 with each cached style crop turned and mirrored at random (JITTER=turn, the default),
    # or also hue-rotated (JITTER=turn+hue: session 14's first try, worse at 2,000 iterations in the
    # relu2_1 means): more variety from the same 519 paintings, for styles the decoder has not seen
    JITTER=${JITTER:-turn}
    folder=$JITTER
    [ "$JITTER" = turn+hue ] && folder=jitter  # session 14's folder for it
    RUN=${RUN:-$ADAIN_HOME/runs/q512-$folder-c256-lr5e-5}
    recipe=(--content-dir "$SHARED/data/content/train512" --style-dir "$SHARED/data/style/train512"
        --load-size 512 --crop-size 256 --batch-size 4 --lr 5e-5 --warmup 200 --jitter-styles "$JITTER"
        --feature-cache "$ADAIN_HOME/features" --ema 0.999 --max-iter 20000 --save-every 250 --image-every 1000) ;;
crop512)
    RUN=${RUN:-$ADAIN_HOME/runs/q512-crop-c256-lr5e-5}
    recipe=(--content-dir "$SHARED/data/content/train512" --style-dir "$SHARED/data/style/train512"
        --load-size 512 --crop-size 256 --batch-size 4 --lr "${LR:-5e-5}" --warmup 200
        --feature-cache "$ADAIN_HOME/features" --ema 0.999 --max-iter 20000 --save-every 250 --image-every 1000) ;;
*) echo "RECIPE must be crop512, mixed512, jitter512, scales512, whole512, cached512 or continue, not $RECIPE" >&2; exit 2 ;;
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
pin=()
if [ -n "${CORE:-}" ]; then
    export OMP_NUM_THREADS=1
    pin=(taskset -c "$CORE")
fi
# PRECISION (session 28): --precision, the arithmetic, not part of the recipe (a run resumes in
# another); auto measures which is faster on this machine
nohup "${pin[@]}" nice -n 19 .venv/bin/adain train "${recipe[@]}" --out-dir "$RUN" --resume "${start[@]}" \
    ${PRECISION:+--precision "$PRECISION"} --time-limit "$MINUTES" -q >>"$RUN.log" 2>&1 &
echo "training in the background (pid $!): $RUN, log $RUN.log"
