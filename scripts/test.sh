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
# The browser test drives Debian's Chromium (never a browser downloaded by a test tool).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } >/dev/null 2>&1 \
            || echo "warning: could not install chromium; the browser test will be skipped" >&2
    else
        echo "note: chromium is not installed; the browser test will be skipped" >&2
    fi
fi
# The page's browser mode runs ONNX Runtime Web, from the npm registry (package.json, package-lock.json).
if [ ! -f node_modules/onnxruntime-web/dist/ort.webgpu.min.js ]; then
    if command -v npm >/dev/null 2>&1; then
        npm ci --no-audit --no-fund --loglevel=error >/dev/null \
            || echo "warning: npm ci failed; the browser-mode tests will be skipped" >&2
    else
        echo "note: npm is not installed; the browser-mode tests will be skipped" >&2
    fi
fi
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/python" -m pytest "$@"
