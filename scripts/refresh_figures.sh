#!/usr/bin/env bash
# Regenerate every picture and report made with the shipped decoder (issue 14, item 5: "with each
# shipped decoder"): the README gallery and strips, the paper reproduction (report, grid, loss plot,
# speed table), and the web page's screenshot. Run it after replacing src/adain/decoder.safetensors,
# on a quiet machine (the reproduction's speed table is a benchmark: pause background training).
#
#   bash scripts/refresh_figures.sh
#
# The paper reproduction reads its trained ablation variants from $ADAIN_HOME/reproduction; where
# they are missing (a new machine) it trains them first (about 21 minutes a variant on one core);
# KEEP_ABLATION=1 reuses the last report's ablation instead (it does not depend on the shipped decoder).
set -euo pipefail
cd "$(dirname "$0")/.."
export ADAIN_HOME=${ADAIN_HOME:-$HOME/.cache/adain}
PY=.venv/bin/python
step() { echo "== $* ($(date +%T))"; "$@"; }
step $PY scripts/make_gallery.py
step $PY scripts/make_seam_crop.py
step $PY scripts/make_video_strip.py
step $PY scripts/make_temporal_strip.py
reproduction=(--work "$ADAIN_HOME/reproduction")
[ -n "${KEEP_ABLATION:-}" ] && reproduction+=(--keep-ablation)
step $PY scripts/paper_reproduction.py "${reproduction[@]}"
# the page's screenshot is taken by its browser test, with the shipped weights rather than the tests' random
# decoder (needs `npm ci` and a Chromium, as scripts/test.sh sets up)
step env ADAIN_UPDATE_SCREENSHOTS=1 ADAIN_BROWSER_DEFAULT_WEIGHTS=1 $PY -m pytest -q tests/test_browser.py -k canonical_sample
echo "== done ($(date +%T)): review the pictures, then commit them with the decoder and docs/MODEL_CARD.md"
