"""End to end in a real browser: `adain serve` on a loopback port, the page driven by Playwright in
Debian's headless Chromium, at a phone-sized viewport."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import CONTENT, ROOT, SHARED_VGG, STYLE, needs_shared

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
        browser.close()
    if os.environ.get("ADAIN_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["ADAIN_SCREENSHOT_DIR"]) / "serve.png")
    if os.environ.get("ADAIN_UPDATE_SCREENSHOTS"):
        target = ROOT / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        Image.open(shot).convert("RGB").save(target / "serve.jpg", quality=80, optimize=True)
    assert Path(shot).stat().st_size > 10_000
