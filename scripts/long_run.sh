#!/usr/bin/env bash
# The standing background job of issue 14 (Quality): the decoder's long run, resumed from its last
# checkpoint or, where its folder is gone (a new machine), started from the shipped decoder. Low
# priority, stopped cleanly with a checkpoint before MINUTES have passed.
#
#   MINUTES=150 bash scripts/long_run.sh   # then: tail -f "$ADAIN_HOME/runs/q512-mixed-x2-c256-lr5e-5-mix0.5-reach0.5.log"
#
# RECIPE=mixed512 is the default since session 14 (its moving average at 2,000 iterations is the
# decoder shipped then: 512 x 512 content 3.419, style 0.892; with TWICE512, the default since session
# 15, at 5,000 iterations, the decoder shipped in session 15: 3.439 / 0.850; docs/training-recipes.md;
# with MIX=0.5 REACH=0.5, the default since session 16, where it beat the plain recipe from the same
# checkpoint; its average at 11,000 and its STYLE_WEIGHT=8 copy's, with two of stage 6's, averaged
# into the decoder shipped in session 17: 3.430 / 0.834; the two at 12,500, with that decoder, into
# session 18's: 3.429 / 0.824), described below. RECIPE=crop512 (the default from session 10 to 13): the paper's scale. train512 (512 px
# images), 256 px crops, style targets from the crops, batch 4, lr 5e-5 warmed up over 200
# iterations, from the shipped decoder; since session 11 on the cached step (--feature-cache) with a
# moving average of the weights (--ema 0.999). Its average at 7,366 iterations is the decoder shipped
# in session 11 (512 x 512: content 3.390, style 0.985 against 3.338 / 1.090; docs/training-recipes.md).
# RECIPE=cached512 is the same recipe from the shipped decoder with STYLE_WEIGHT (default 20; session
# 11 ran it to 3,847 iterations). RECIPE=whole512 is crop512 with the style targets (and AdaIN's
# style statistics) from the whole style image, what inference uses (session 12's comparison, with the
# moving average: the session-8 verdict against it came from single checkpoints). RECIPE=scales512 is
# crop512 with the style crops cut at short sides 512 and 256 (--style-scales). RECIPE=mixed512 is
# crop512 with train/'s 1,100 paintings beside train512's 519, at their own 256 px scale
# (--no-style-upscale), and RECIPE=jitter512 with the style crops turned and mirrored at random
# (--jitter-styles turn; JITTER=turn+hue recolours too); both from session 14, for unseen styles. RECIPE=continue is
# the 256 px recipe at lr 1e-5 (stopped at 764).
#
# Two runs side by side: CORE=0 and CORE=1 pin each to one core with one thread. LR sets crop512's
# base rate (default 5e-5; the schedule still divides it by 1 + 5e-5 x iteration), and RUN another
# run folder: session 13 annealed a copy of the standing run with RUN=...-anneal LR=2e-5 (mixed512
# takes LR too since session 27).
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
    # crop512 with more styles (session 14: the 512 px runs fit their 519 paintings far better than
    # unseen ones): train512 and the 1,100 paintings of train/ at their own 256 px scale, never
    # upscaled, from one folder of links (names repeat between the two sets, so each keeps its own)
    # (session 15's variants: TWICE512=1, the default since its run shipped as stage 6, links
    # train512 twice, its second copy cut at other crops, so the 512 px paintings are drawn about as
    # often as the 256 px ones (TWICE512= for stage 5's recipe); JITTER=turn turns and mirrors the
    # crops as in jitter512, JITTER=half-turn turns them by 180 degrees only, JITTER=hue (session
    # 19) recolours half of them, the strokes as painted, for the colour channel the canonical styles
    # need and the training styles rarely have (training-recipes.md, session 18); session 16's
    # STYLE_WEIGHT, the paper's lambda (default 10), is the lever for content, which stage 6 left at
    # the target's edge: its runs have their own folder, ...-sw$STYLE_WEIGHT; and MIX, session 16's
    # --mix-styles P, each style target blended with another at that probability, ...-mix$MIX, with
    # REACH the blend's weight from -REACH to 1 + REACH (--mix-reach), ...-mix$MIX-reach$REACH; both
    # 0.5 by default since session 16, MIX= for session 15's recipe; SEED (session 20), the data
    # order, for a sibling of a run from the same start that draws other crops and styles)
    # --max-iter 40000 since session 18: its runs passed 14,000 of the 20,000 they started with, and
    # the iteration budget is not part of the recipe, so a resumed run takes the new one silently;
    # --keep-every 500 since session 20: the snapshots that the means of weights are made of;
    # LAYERS (session 23), --style-layer-weights, e.g. 1,2,1,1: the relu2_1 terms that every branch
    # loses first weighed twice, ...-lw1,2,1,1; CLAMP=1 (session 25), --clamp-output: the losses of
    # the output clamped to [0, 1] as it is saved, ...-clamp; DISTIL=0.5 (session 26, with DISTIL_ALPHA,
    # default 0.93), --distil-feedback: the content target is the starting decoder's two-pass output
    # (--feedback 0.5 --alpha 0.93), ...-distil0.5a0.93; LR (session 27, default 5e-5), ...-lr$LR:
    # the GPU lease showed this recipe leaving stage 10's 512² behaviour at 5e-5 within 1,000 iterations
    # (the recipe's flags and its folder of style links: scripts/mixed_recipe.sh, shared with
    # device_chunk.sh)
    TWICE512=${TWICE512-1}
    source scripts/mixed_recipe.sh
    STYLES=$ADAIN_HOME/styles-mixed${TWICE512:+-x2}
    if [ -n "${HOLDOUT:-}" ]; then
        # session 31: HOLDOUT=0.1 keeps a tenth of the paintings (by their originals, at both
        # scales) out of training, linked for ranking in $ADAIN_HOME/held-out$HOLDOUT-styles (20 of
        # them); the subset has its own feature cache (built once), and the runs ...-ho$HOLDOUT
        STYLES=$STYLES-held-out$HOLDOUT
        d=$SHARED/data/style
        .venv/bin/python scripts/held_out.py "$d/train512:train512:$d/MANIFEST512.csv" \
            "$d/train:train:$d/MANIFEST.csv" ${TWICE512:+"$d/train512:train512-again:$d/MANIFEST512.csv"} \
            --share "$HOLDOUT" --train "$STYLES" --held-out "$ADAIN_HOME/held-out$HOLDOUT-styles" --max 20
    else
        mixed_styles "$STYLES" "$SHARED/data/style/train512" "$SHARED/data/style/train" "$TWICE512"
    fi
    variant=()  # the flags of the variants above that are switched on
    [ -n "${JITTER:-}" ] && variant+=(--jitter-styles "$JITTER")
    [ -n "${STYLE_WEIGHT:-}" ] && variant+=(--style-weight "$STYLE_WEIGHT")
    [ -n "${SEED:-}" ] && variant+=(--seed "$SEED")
    [ -n "${LAYERS:-}" ] && variant+=(--style-layer-weights "$LAYERS")
    [ -n "${CLAMP:-}" ] && variant+=(--clamp-output)
    # session 32: WIDEN=fresh (--widen: new channels drawn afresh, not copied) and NEWLR (--new-channel-lr:
    # the added channels' rate times NEWLR), with WIDTH; ...-$WIDEN-nlr$NEWLR
    [ -n "${WIDEN:-}" ] && variant+=(--widen "$WIDEN")
    [ -n "${NEWLR:-}" ] && variant+=(--new-channel-lr "$NEWLR")
    [ -n "${DISTIL:-}" ] && DISTIL_ALPHA=${DISTIL_ALPHA:-0.93} && variant+=(--distil-feedback "$DISTIL" --distil-alpha "$DISTIL_ALPHA")
    LR=${LR:-5e-5}
    BATCH=${BATCH:-4}  # session 29: BATCH, --batch-size (4 unless set), ...-b$BATCH; GAIN and BOLD (session 30), ...-gain$GAIN-bold$BOLD; WIDTH (session 31), --decoder-width, ...-w$WIDTH; HOLDOUT (session 31, below), ...-ho$HOLDOUT
    batch_tag=; [ "$BATCH" = 4 ] || batch_tag=-b$BATCH
    RUN=${RUN:-$ADAIN_HOME/runs/q512-mixed${JITTER:+-$JITTER}${TWICE512:+-x2}-c$CROP${TARGETS:+-$TARGETS}$batch_tag-lr$LR${STYLE_WEIGHT:+-sw$STYLE_WEIGHT}${MIX:+-mix$MIX}${REACH:+-reach$REACH}${GAIN:+-gain$GAIN}${BOLD:+-bold$BOLD}${SEED:+-seed$SEED}${LAYERS:+-lw$LAYERS}${CLAMP:+-clamp}${WIDTH:+-w$WIDTH}${WIDEN:+-$WIDEN}${NEWLR:+-nlr$NEWLR}${HOLDOUT:+-ho$HOLDOUT}${DISTIL:+-distil${DISTIL}a${DISTIL_ALPHA}}}
    recipe=(--content-dir "$SHARED/data/content/train512" --style-dir "$STYLES" "${MIXED_RECIPE[@]}"
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
