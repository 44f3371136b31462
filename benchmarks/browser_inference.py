"""Time to stylize a 512 px image in the page's browser mode (ONNX Runtime Web, WebAssembly, in
Debian's headless Chromium) beside ONNX Runtime and PyTorch on this CPU, in one run; and the
model files' sizes, fp32 and fp16.

Browser: ``adain serve`` on 127.0.0.1 (cross-origin isolated, so WebAssembly runs threaded), the
canonical content at 512 px short side and a style, the page's own "Done in" time; the first run
includes fetching and compiling the models, the later ones do not (each chooses the photo and the
style anew, so each encodes both); then the same photo and style at other strengths, which the page
paints from the encodings it kept (the decoder alone). CPU: ``Stylizer`` with
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


def browser_times(runs: int) -> tuple[list[float], list[float], str]:
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

            def done_in() -> tuple[float, str]:
                page.evaluate("document.getElementById('status').textContent = ''")
                page.click("#go")
                page.wait_for_function("/Done in/.test(document.getElementById('status').textContent) || "
                                       "document.getElementById('error').textContent", timeout=600_000)  # fmt: skip
                status, error = page.inner_text("#status"), page.inner_text("#error")
                assert not error, error
                return float(re.search(r"Done in ([\d.]+) s", status).group(1)), status

            times, kept = [], []
            for _ in range(runs):  # the photo and the style chosen anew: nothing kept from the last run
                if page.locator("#chosen li").count():
                    page.click("#chosen li button")
                for field, path in (("#content", CONTENT), ("#style-files", STYLE)):
                    page.set_input_files(field, [])  # else choosing the same file again changes nothing
                    page.set_input_files(field, str(path))
                seconds, status = done_in()
                times.append(seconds)
                label = re.search(r"\((.*?);", status).group(1)
            for alpha in ("0.9", "0.8", "0.7")[:runs]:  # another strength: both encodings kept
                page.fill("#alpha", alpha)
                page.dispatch_event("#alpha", "input")
                seconds, status = done_in()
                assert "2 encodings kept" in status, status
                kept.append(seconds)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return times, kept, label


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
    # the CPU first: a closing browser and server would still hold the cores for a while
    on_cpu = {"onnxruntime_cpu": cpu_times("onnx", args.runs), "torch_cpu": cpu_times("torch", args.runs)}
    browser, kept, label = browser_times(args.runs)
    result = {
        "image": f"{CONTENT.name} at 512 px short side, style {STYLE.name} at 512 px",
        "browser": {"runtime": label, "seconds": browser, "first_includes_loading_models": True},
        "browser_other_strength": {"seconds": kept, "encodings_kept": True},
        **{name: {"seconds": seconds} for name, seconds in on_cpu.items()},
        "model_bytes": sizes,
    }
    for name in ("browser", "browser_other_strength", "onnxruntime_cpu", "torch_cpu"):
        print(f"{name}: {', '.join(f'{t:.2f}' for t in result[name]['seconds'])} s")
    print(f"model sizes: {sizes}")
    write_results(args.out, result)


if __name__ == "__main__":
    main()
