#!/usr/bin/env bash
# The project's test command: builds .venv from nothing if needed (CPU torch 2.13.0 first, so no
# CUDA build is pulled in), installs adain with its test extras, then lint, format check and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${ADAIN_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q torch==2.13.0
"$VENV/bin/python" -m pip install -q -e '.[test]'
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/python" -m pytest "$@"
