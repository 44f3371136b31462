"""Time to stylize a 512 px image in the page's browser mode (ONNX Runtime Web, WebAssembly, in
Debian's headless Chromium) beside ONNX Runtime and PyTorch on this CPU, in one run; and the
model files' sizes, fp32 and fp16.

Browser: ``adain serve`` on 127.0.0.1 (cross-origin isolated, so WebAssembly runs threaded), the
canonical content at 512 px short side and a style, the page's own "Done in" time; the first run
includes fetching and compiling the models, the later ones do not. CPU: ``Stylizer`` with
``backend="onnx"`` and the default torch backend on the same pair (style encoding included, as
in the page).

    python benchmarks/browser_inference.py [--runs 3]
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from results_file import add_out_flags, parse_args, write_results

from adain import Stylizer
from adain.export import export_onnx

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT.parent / "shared" / "images"
CONTENT, STYLE = IMAGES / "content" / "cornell.jpg", IMAGES / "style" / "woman_with_hat_matisse.jpg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser_times(runs: int) -> tuple[list[float], str]:
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "adain", "serve", "--port", str(port), "--device", "cpu"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page()
            page.goto(url + "/?wasm")
            page.wait_for_function("!document.getElementById('mode-browser').disabled", timeout=60_000)
            page.check("#mode-browser")
            page.select_option("#size", "512")
            page.set_input_files("#content", str(CONTENT))
            page.set_input_files("#style-files", str(STYLE))
            times, label = [], ""
            for _ in range(runs):
                page.evaluate("document.getElementById('status').textContent = ''")
                page.click("#go")
                page.wait_for_function("/Done in|Could not/.test(document.getElementById('status').textContent + "
                                       "document.getElementById('error').textContent)", timeout=600_000)  # fmt: skip
                status = page.inner_text("#status")
                times.append(float(re.search(r"Done in ([\d.]+) s", status).group(1)))
                label = re.search(r"\((.*?);", status).group(1)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return times, label


def cpu_times(backend: str, runs: int) -> list[float]:
    stylizer = Stylizer.from_pretrained(device="cpu", backend=backend)
    stylizer(CONTENT, STYLE, content_size=512, style_size=512)  # warm-up (and the export, for onnx)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        stylizer(CONTENT, STYLE, content_size=512, style_size=512)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    add_out_flags(parser, "browser_inference.json")
    args = parse_args(parser)
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision, fp16 in (("fp32", False), ("fp16", True)):
            out = export_onnx(Path(tmp) / precision, fp16=fp16)
            sizes[precision] = {
                name: (out / name).stat().st_size for name in ("encoder.onnx", "decoder.onnx")
            }
    browser, label = browser_times(args.runs)
    result = {
        "image": f"{CONTENT.name} at 512 px short side, style {STYLE.name} at 512 px",
        "browser": {"runtime": label, "seconds": browser, "first_includes_loading_models": True},
        "onnxruntime_cpu": {"seconds": cpu_times("onnx", args.runs)},
        "torch_cpu": {"seconds": cpu_times("torch", args.runs)},
        "model_bytes": sizes,
    }
    for name in ("browser", "onnxruntime_cpu", "torch_cpu"):
        print(f"{name}: {', '.join(f'{t:.2f}' for t in result[name]['seconds'])} s")
    print(f"model sizes: {sizes}")
    write_results(args.out, result)


if __name__ == "__main__":
    main()
