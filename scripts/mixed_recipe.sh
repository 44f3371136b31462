# Issue 14's standing recipe ("mixed512", the default of long_run.sh since session 14), sourced by
# long_run.sh (the CPU's runs) and device_chunk.sh (a lent GPU's chunk), so that both train the same
# thing from their own copies of the data.
#
#   source scripts/mixed_recipe.sh
#   mixed_styles "$STYLES" PAINTINGS_512 PAINTINGS_256 1     # then: --style-dir "$STYLES"
#   adain train ... "${MIXED_RECIPE[@]}" --batch-size 4 --lr 5e-5 ...
#
# MIX and REACH (each 0.5 unless set; MIX= switches blending off) are --mix-styles and --mix-reach;
# CROP (256 unless set) is --crop-size, and TARGETS=whole --style-targets whole (session 29: CROP=512
# TARGETS=whole trains on the whole 512 px photo against the whole painting's statistics, what the
# 512² evaluation asks of the decoder; the 256 px paintings stay at their own size). GAIN (unset
# unless given) is --style-gain (session 30: each channel's style statistics scaled by a random factor,
# for styles off the line between paintings), and BOLD (unset unless given) --bold-styles (session
# 30: the styles drawn by their energy to that power, for the marked styles the evaluation's mean
# is made of).

# One folder of links to every style image: the 512 px paintings in train512/ (and, with TWICE,
# again in train512-again/, cut at other crops, so that they are drawn about as often as the 256 px
# ones) beside the 256 px paintings in train/, at their own scale (--no-style-upscale). Names repeat
# between the two sets, so each keeps its own subfolder; the feature cache knows them by these paths.
mixed_styles() {
    local dest=$1 large=$2 small=$3 twice=${4:-} set
    local sets=("$large:train512" "$small:train")
    [ -n "$twice" ] && sets+=("$large:train512-again")
    for set in "${sets[@]}"; do
        mkdir -p "$dest/${set##*:}"
        ln -sfn "$(realpath "${set%:*}")"/* "$dest/${set##*:}/"
    done
}

MIX=${MIX-0.5}
REACH=${REACH-0.5}
[ -z "$MIX" ] && REACH=
CROP=${CROP:-256}
# 512 px content, CROP px crops of cached features, warm-up and moving average (batch size, learning
# rate and the cache's folder are the caller's)
MIXED_RECIPE=(--load-size 512 --crop-size "$CROP" --warmup 200 --no-style-upscale --ema 0.999
    ${MIX:+--mix-styles "$MIX"} ${REACH:+--mix-reach "$REACH"} ${TARGETS:+--style-targets "$TARGETS"}
    ${GAIN:+--style-gain "$GAIN"} ${BOLD:+--bold-styles "$BOLD"} ${WIDTH:+--decoder-width "$WIDTH"})
