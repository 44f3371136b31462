"""End to end in a real browser: `adain serve` on a loopback port, the page driven by Playwright in
Debian's headless Chromium, at a phone-sized viewport."""

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import CONTENT, MASK, ROOT, SHARED_VGG, STYLE, STYLE2, needs_shared

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [
    needs_shared,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, decoder_file):
    styles = tmp_path / "styles"
    styles.mkdir()
    shutil.copy(STYLE, styles / STYLE.name)
    port = free_port()
    weights = (
        []
        if os.environ.get("ADAIN_BROWSER_DEFAULT_WEIGHTS")
        else ["--decoder", str(decoder_file), "--vgg", str(SHARED_VGG)]
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "adain", "serve", "--port", str(port), "--styles-dir", str(styles), "--device", "cpu", *weights],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"adain serve exited: {proc.stderr.read()[-2000:]}")
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_page_stylizes_the_canonical_sample(server, tmp_path):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        page.goto(server)
        page.click("#go")
        assert "Choose a content photo" in page.inner_text("#error")  # errors are shown, not silent
        page.set_input_files("#content", str(CONTENT))
        page.click(f"#builtin button[data-id='{STYLE.stem}']")
        page.click("#go")
        page.wait_for_function("document.getElementById('output').naturalWidth > 0", timeout=120_000)
        assert page.inner_text("#error") == ""
        assert "Done in" in page.inner_text("#status")
        width = page.evaluate("document.getElementById('output').naturalWidth")
        height = page.evaluate("document.getElementById('output').naturalHeight")
        assert min(width, height) == 512  # the server's default content size
        assert page.is_visible("#download")
        shot = tmp_path / "serve.png"
        page.screenshot(path=str(shot), full_page=True)
        # the polish box: the page shows what the API gives for three steps
        first = page.evaluate("document.getElementById('output').src")
        page.check("#polish")
        page.select_option("#size", "256")
        page.click("#go")
        page.wait_for_function(
            f"document.getElementById('output').src !== {first!r} || document.getElementById('error').textContent",
            timeout=300_000,
        )
        assert page.inner_text("#error") == "" and "Done in" in page.inner_text("#status")
        output = "fetch(document.getElementById('output').src).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)))"
        shown = bytes(page.evaluate(output))
        browser.close()
    import httpx
    from PIL import Image

    form = {"style_id": STYLE.stem, "content_size": "256", "alpha": "1"}
    answers = {
        steps: httpx.post(server + "/v1/stylize", data={**form, "polish": steps},
                          files=[("content", CONTENT.read_bytes())], timeout=300).content
        for steps in ("0", "3")
    }  # fmt: skip
    assert shown == answers["3"] != answers["0"]
    assert min(Image.open(io.BytesIO(shown)).size) == 256
    if os.environ.get("ADAIN_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["ADAIN_SCREENSHOT_DIR"]) / "serve.png")
    if os.environ.get("ADAIN_UPDATE_SCREENSHOTS"):
        target = ROOT / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        Image.open(shot).convert("RGB").save(target / "serve.jpg", quality=80, optimize=True)
    assert Path(shot).stat().st_size > 10_000


RUNTIME = ROOT / "node_modules" / "onnxruntime-web" / "dist"
needs_runtime = pytest.mark.skipif(
    not (RUNTIME / "ort.webgpu.min.js").is_file(), reason="ONNX Runtime Web is not installed (npm ci)"
)


def launch(p):
    return p.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync"],
    )  # fmt: skip


def click_and_wait(page) -> None:
    """Stylize, wait for the result or an error, and require the result."""
    page.click("#go")
    page.wait_for_function(
        "document.getElementById('output').naturalWidth > 0 || document.getElementById('error').textContent",
        timeout=300_000,
    )
    assert page.inner_text("#error") == ""


def psnr(a, b) -> float:
    import numpy as np

    mse = np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse else float("inf")


@needs_runtime
@pytest.mark.parametrize(
    "controls",
    [
        "alpha, blend, palette",
        "mask, colour",
        "mask, feedback, palette",
        "blend, match",
        "mask, feedback, match",
    ],
)
def test_browser_mode_stylizes_inside_the_browser_like_the_server(server, tmp_path, controls):
    """The page's browser mode: nothing is posted, and the result is the server's within 35 dB."""
    import io

    from PIL import Image

    content, style, second = tmp_path / "content.png", tmp_path / "style.png", tmp_path / "second.png"
    img = Image.open(CONTENT).convert("RGB")
    img.resize((img.width * 200 // img.height, 200), Image.Resampling.LANCZOS).save(content)
    for source, target in ((STYLE, style), (STYLE2, second)):
        img = Image.open(source).convert("RGB")  # at the style size already: neither side resizes it
        img.resize((512, img.height * 512 // img.width), Image.Resampling.LANCZOS).save(target)
    styles = [style, second]
    with playwright.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        posted = []
        page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
        page.goto(server + "/?wasm")
        page.wait_for_function("!document.getElementById('mode-browser').disabled", timeout=30_000)
        page.check("#mode-browser")
        assert page.is_disabled("#polish")  # the browser runs the networks forward only
        page.select_option("#size", "0")
        page.set_input_files("#content", str(content))
        page.set_input_files("#style-files", [str(path) for path in styles])
        page.fill("#alpha", "0.8")
        page.dispatch_event("#alpha", "input")
        if "mask" in controls:
            page.set_input_files("#mask", str(MASK))
        if "colour" in controls:
            page.check("#preserve-color")
        if "feedback" in controls:
            page.check("#feedback")
        if "match" in controls:
            page.check("#match")
        if "palette" in controls:
            page.check("#preserve-color")
            page.check("#palette")  # the style's colours or the photo's: checking one clears the other
            assert not page.is_checked("#preserve-color")
        click_and_wait(page)
        status = page.inner_text("#status")
        assert "in this browser (WebAssembly" in status and "nothing was uploaded" in status
        assert "kept from an earlier run" not in status
        output = "fetch(document.getElementById('output').src).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)))"
        data = page.evaluate(output)
        if "alpha" in controls:  # another strength: the photo and the styles are not encoded again
            page.fill("#alpha", "0.5")
            page.dispatch_event("#alpha", "input")
            page.click("#go")  # its handler says "Working" before it yields
            page.wait_for_function(
                "/^Done/.test(document.getElementById('status').textContent) || document.getElementById('error').textContent",
                timeout=300_000,
            )
            assert page.inner_text("#error") == ""
            assert "3 encodings kept from an earlier run" in page.inner_text("#status")
            weaker = Image.open(io.BytesIO(bytes(page.evaluate(output)))).convert("RGB")
        browser.close()
    assert posted == []  # the photo never left the page
    in_browser = Image.open(io.BytesIO(bytes(data))).convert("RGB")
    form = {
        "alpha": "0.8",
        "content_size": "0",
        "format": "png",
        "preserve_color": str("colour" in controls).lower(),
        "feedback": "0.5" if "feedback" in controls else "0",
    }
    files = [("content", content.read_bytes()), *[("style", path.read_bytes()) for path in styles]]
    if "mask" in controls:
        files.append(("mask", MASK.read_bytes()))
    if "palette" in controls:
        form["palette"] = "0.25"
    if "match" in controls:
        form["decoder_match"] = "0.75"
    import httpx

    response = httpx.post(server + "/v1/stylize", data=form, files=files, timeout=300)
    assert response.status_code == 200
    on_server = Image.open(io.BytesIO(response.content)).convert("RGB")
    assert in_browser.size == on_server.size == Image.open(content).size
    print(f"{controls}: {psnr(in_browser, on_server):.1f} dB")
    assert psnr(in_browser, on_server) >= 35
    if "alpha" in controls:
        response = httpx.post(server + "/v1/stylize", data={**form, "alpha": "0.5"}, files=files, timeout=300)
        on_server_weaker = Image.open(io.BytesIO(response.content)).convert("RGB")
        print(f"{controls}, 0.5 from kept encodings: {psnr(weaker, on_server_weaker):.1f} dB")
        assert psnr(weaker, on_server_weaker) >= 35 and psnr(weaker, in_browser) < 35
    if "feedback" in controls:  # the box did something, in the browser as on the server
        once = httpx.post(server + "/v1/stylize", data={**form, "feedback": "0"}, files=files, timeout=300)
        plain = Image.open(io.BytesIO(once.content)).convert("RGB")
        print(f"{controls}: against one pass {psnr(in_browser, plain):.1f} dB")
        assert psnr(in_browser, plain) < 35
    if "match" in controls:  # the box did something, in the browser as on the server
        response = httpx.post(
            server + "/v1/stylize", data={**form, "decoder_match": "0"}, files=files, timeout=300
        )
        plain = Image.open(io.BytesIO(response.content)).convert("RGB")
        print(f"{controls}: against no match {psnr(in_browser, plain):.1f} dB")
        assert psnr(in_browser, plain) < psnr(in_browser, on_server) - 3
    if "palette" in controls:  # nearer the server's recoloured result than its plain one
        response = httpx.post(server + "/v1/stylize", data={**form, "palette": "0"}, files=files, timeout=300)
        plain = Image.open(io.BytesIO(response.content)).convert("RGB")
        print(f"{controls}: against no palette {psnr(in_browser, plain):.1f} dB")
        assert psnr(in_browser, plain) < psnr(in_browser, on_server) - 3


@needs_runtime
def test_static_web_export_stylizes_in_the_browser_with_no_server(tmp_path, decoder_file):
    """``adain export --web``: the folder served by a plain static file server works on its own."""
    from adain.cli import main

    site = tmp_path / "site"
    assert (
        main(
            ["export", str(site), "--web", "--fp16", "--decoder", str(decoder_file), "--vgg", str(SHARED_VGG)]
        )
        == 0
    )
    port = free_port()
    files = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        with playwright.sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("document.getElementById('mode-browser').checked", timeout=30_000)
            assert not page.is_visible("#mode-server-label")  # no server to send to
            page.select_option("#size", "256")
            page.set_input_files("#content", str(CONTENT))
            page.set_input_files("#style-files", str(STYLE))
            click_and_wait(page)
            assert "in this browser" in page.inner_text("#status")
            assert min(page.evaluate("[output.naturalWidth, output.naturalHeight]")) == 256
            browser.close()
    finally:
        files.terminate()
        files.wait(timeout=10)
