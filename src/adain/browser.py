"""The page's browser mode: the exported ONNX models run inside the browser by ONNX Runtime Web
(WebAssembly; WebGPU where the browser has it), so a photo never leaves the machine.

ONNX Runtime Web comes from the npm registry (``package.json`` at the source root: ``npm ci``), not
from PyPI, so a Python install alone has no browser mode: the page then offers the server mode
only and says why. The page finds everything through ``web.json`` beside it, served by ``adain
serve`` or written by ``adain export --web`` (a folder any static file host can serve):

    web.json              {"static": ..., "browser": {"available", "reason", "runtime", "models"}}
    ort/<RUNTIME_FILES>   ONNX Runtime Web
    models/encoder.onnx, models/decoder.onnx, models/adain.json
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from . import files
from .errors import AdainError, UsageError

RUNTIME_PACKAGE = "onnxruntime-web"
# the WebGPU build also runs on WebAssembly alone, from the same .wasm file
RUNTIME_FILES = ("ort.webgpu.min.js", "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm")
RUNTIME_URL = "ort/ort.webgpu.min.js"
MODELS_URL = "models/"
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout, for an editable install


def runtime_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The folder holding ONNX Runtime Web's files: ``explicit`` (an error if it does not hold
    them), else ``$ADAIN_WEB_RUNTIME``, else ``node_modules`` in the working folder or the source
    checkout; None where there is none."""
    if explicit is not None:
        folder = Path(explicit)
        missing = [name for name in RUNTIME_FILES if not (folder / name).is_file()]
        if missing:
            raise UsageError(
                f"--web-runtime {folder}: no {missing[0]} there (the dist folder of {RUNTIME_PACKAGE})"
            )
        return folder
    candidates = [Path(os.environ["ADAIN_WEB_RUNTIME"])] if os.environ.get("ADAIN_WEB_RUNTIME") else []
    candidates += [root / "node_modules" / RUNTIME_PACKAGE / "dist" for root in (Path.cwd(), SOURCE_ROOT)]
    for folder in candidates:
        if all((folder / name).is_file() for name in RUNTIME_FILES):
            return folder
    return None


def unavailable_reason(runtime: Path | None) -> str | None:
    """Why the browser mode cannot be offered, in a line for the page; None when it can."""
    if runtime is None:
        return (
            f"ONNX Runtime Web is not installed: run `npm ci` in the adain source folder "
            f"(or pass --web-runtime DIR, the dist folder of the npm package {RUNTIME_PACKAGE})"
        )
    try:
        import onnx  # noqa: F401
    except ImportError:
        return "exporting the models needs the onnx extra: pip install 'adain[onnx]'"
    return None


def web_config(static: bool, reason: str | None, polish: int = 0, decoder_match: float = 0.0) -> dict:
    """What the page reads from ``web.json``; ``polish``: the most steps the server takes (a static
    export has no server, and the browser cannot take them: it runs the networks forward only);
    ``decoder_match``: the share a decoder records (its textures box starts ticked at that share),
    else 0."""
    return {
        "static": static,
        "polish": polish,
        "decoder_match": decoder_match,
        "browser": {
            "available": reason is None,
            "reason": reason,
            "runtime": RUNTIME_URL,
            "models": MODELS_URL,
        },
    }


def page_html() -> str:
    import importlib.resources

    return (importlib.resources.files("adain") / "web" / "index.html").read_text()


def export_web(
    out_dir: str | os.PathLike,
    vgg: str | os.PathLike | None = None,
    decoder: str | os.PathLike | None = None,
    runtime: str | os.PathLike | None = None,
    overwrite: bool = False,
    fp16: bool = False,
) -> Path:
    """A self-contained folder: the page in browser-only mode, ONNX Runtime Web and the models."""
    from .export import export_onnx

    out = Path(out_dir)
    if (out / "index.html").exists() and not overwrite:
        raise UsageError(f"{out} holds a web export: pass --overwrite to replace it")
    folder = runtime_dir(runtime)
    reason = unavailable_reason(folder)
    if reason is not None:
        raise AdainError(reason)
    files.check_writable(out)
    export_onnx(out / "models", vgg, decoder, overwrite=True, fp16=fp16)
    (out / "ort").mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_FILES:
        with files.replacing(out / "ort" / name) as tmp:
            shutil.copyfile(folder / name, tmp)
    share = json.loads((out / "models" / "adain.json").read_text())["decoder_match"]["default_share"]
    config = web_config(static=True, reason=None, decoder_match=share)
    files.write_text(out / "web.json", json.dumps(config, indent=2) + "\n")
    files.write_text(out / "index.html", page_html())
    return out
