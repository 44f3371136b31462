import asyncio
import io
import time

import httpx
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")

from adain.serve import ServeConfig, create_app  # noqa: E402

from .conftest import make_image  # noqa: E402


def png_bytes(size=(48, 40), seed=0, tmp=None) -> bytes:
    path = make_image(tmp / f"img{seed}.png", size, seed=seed)
    return path.read_bytes()


@pytest.fixture
def app_factory(stylizer, tmp_path):
    def make(**options):
        return create_app(ServeConfig(**options), stylizer=stylizer)

    return make


@pytest.fixture
def client(app_factory, tmp_path):
    styles = tmp_path / "builtin"
    styles.mkdir()
    make_image(styles / "waves.png", (40, 40), seed=21)
    (styles / "broken.jpg").write_bytes(b"not an image")
    from fastapi.testclient import TestClient

    return TestClient(app_factory(styles_dir=str(styles)))


def stylize(client, tmp_path, **fields):
    files = [("content", ("photo.png", png_bytes((53, 37), 1, tmp_path), "image/png"))]
    if fields.pop("with_style", True):
        files.append(("style", ("art.png", png_bytes((40, 40), 2, tmp_path), "image/png")))
    files += fields.pop("files", [])
    return client.post("/v1/stylize", files=files, data=fields)


def test_health_page_and_docs(client):
    assert client.get("/healthz").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and "<title>adain" in page.text
    assert client.get("/docs").status_code == 200
    assert "/v1/stylize" in client.get("/openapi.json").json()["paths"]


def test_stylize_returns_the_image(client, tmp_path):
    response = stylize(client, tmp_path, content_size="0", alpha="0.7")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (53, 37)
    png = stylize(client, tmp_path, content_size="24", format="png")
    assert png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (34, 24)


def test_feedback_paints_twice(client, app_factory, tmp_path):
    once = stylize(client, tmp_path, content_size="0", format="png")
    twice = stylize(client, tmp_path, content_size="0", format="png", feedback="1")
    assert once.status_code == twice.status_code == 200
    assert once.content != twice.content
    from fastapi.testclient import TestClient

    previewed = stylize(
        TestClient(app_factory(feedback_preview=0.5)), tmp_path, content_size="0", format="png", feedback="1"
    )
    assert previewed.status_code == 200 and previewed.content not in (once.content, twice.content)


def test_polish_takes_its_steps_on_the_server(client, app_factory, tmp_path):
    once = stylize(client, tmp_path, content_size="0", format="png")
    polished = stylize(client, tmp_path, content_size="0", format="png", polish="2")
    assert once.status_code == polished.status_code == 200
    a, b = (np.asarray(Image.open(io.BytesIO(r.content)), float) for r in (once, polished))
    assert a.shape == b.shape == (37, 53, 3)
    assert 0 < np.abs(a - b).mean() < 40  # a few levels of grain, not another picture
    builtin = stylize(client, tmp_path, with_style=False, style_id="waves", content_size="0", polish="1")
    assert builtin.status_code == 200
    assert client.get("/web.json").json()["polish"] == 10  # what the page reads to offer its box
    from fastapi.testclient import TestClient

    refused = [
        (stylize(client, tmp_path, polish="11"), "at most 10 steps"),
        (stylize(TestClient(app_factory(max_polish=0)), tmp_path, polish="1"), "offers none"),
        (stylize(TestClient(app_factory(max_memory_mb=200)), tmp_path, polish="1"), "memory budget"),
        (
            stylize(
                client,
                tmp_path,
                polish="1",
                files=[
                    ("style", ("b.png", png_bytes((40, 40), 4, tmp_path), "image/png")),
                    ("mask", ("m.png", png_bytes((53, 37), 5, tmp_path), "image/png")),
                ],
            ),
            "mask",
        ),
    ]
    for response, reason in refused:
        assert response.status_code == 422 and reason in response.json()["detail"]


def test_kept_styles_are_polished_towards_taps_measured_once(client, tmp_path, monkeypatch):
    import adain.stylize

    measured = []  # style images measured at four taps by polish requests
    real = adain.stylize.Stylizer._polish_codes

    def counting(self, styles, *args):
        measured.append(sum(not isinstance(s, adain.stylize.StyleCode) for s in styles))
        return real(self, styles, *args)

    monkeypatch.setattr(adain.stylize.Stylizer, "_polish_codes", counting)
    art = png_bytes((40, 40), 2, tmp_path)  # the image stylize() sends as the style
    style_id = client.post("/v1/styles", files={"style": ("art.png", art, "image/png")}).json()["id"]
    measured.clear()  # the upload measured it once
    sent = stylize(client, tmp_path, content_size="0", format="png", polish="2")
    kept = stylize(client, tmp_path, with_style=False, style_id=style_id, content_size="0", format="png",
                   polish="2")  # fmt: skip
    builtin = stylize(client, tmp_path, with_style=False, style_id="waves", polish="1")
    assert sent.status_code == kept.status_code == builtin.status_code == 200
    assert measured == [1, 0, 0]  # only the style sent with its request
    assert kept.content == sent.content  # the same taps, measured before


def test_palette_moves_the_colours_on_the_server(client, tmp_path):
    from adain import images
    from adain.colour import palette_of

    def distance(response, target) -> float:
        mean, cov = palette_of(images.to_tensor(Image.open(io.BytesIO(response.content))))
        return float((mean - target[0]).norm() + (cov - target[1]).norm())

    art = Image.open(io.BytesIO(png_bytes((40, 40), 2, tmp_path)))  # the style stylize() sends
    target = palette_of(images.to_tensor(art))
    once = stylize(client, tmp_path, content_size="0", format="png")
    moved = stylize(client, tmp_path, content_size="0", format="png", palette="1")
    assert once.status_code == moved.status_code == 200 and distance(moved, target) < distance(once, target)
    kept = stylize(client, tmp_path, with_style=False, style_id="waves", palette="0.5")  # a built-in style's
    assert kept.status_code == 200
    for fields, reason in (
        ({"palette": "1.5"}, "palette"),
        ({"palette": "1", "preserve_color": "true"}, "choose one"),
    ):
        refused = stylize(client, tmp_path, **fields)
        assert refused.status_code == 422 and reason in str(refused.json()["detail"])


def test_the_servers_budget_takes_polish_of_a_16_9_photo_at_512_px(stylizer):
    import torch

    from adain.serve import ServeConfig

    photo = torch.zeros(1, 3, 512, 910)  # the page's default size; polish never tiles
    stylizer.with_options(polish=3, max_memory_mb=ServeConfig().max_memory_mb)._check_polish(
        photo, ["s"], None
    )


def test_uploaded_and_builtin_styles(client, tmp_path):
    listed = client.get("/v1/styles").json()["styles"]
    assert [s["id"] for s in listed] == ["waves"]  # the broken file in the folder is skipped
    assert client.get(listed[0]["thumbnail"]).headers["content-type"] == "image/jpeg"
    uploaded = client.post(
        "/v1/styles", files={"style": ("mine.png", png_bytes((40, 40), 3, tmp_path), "image/png")}
    )
    assert uploaded.status_code == 201
    style_id = uploaded.json()["id"]
    both = stylize(
        client,
        tmp_path,
        with_style=False,
        style_id=["waves", style_id],
        style_weights="1,3",
        content_size="0",
    )
    assert both.status_code == 200
    assert stylize(client, tmp_path, with_style=False, style_id="nope").status_code == 404


@pytest.mark.parametrize(
    "fields,field_name",
    [
        ({"alpha": "2"}, "alpha"),
        ({"alpha": "x"}, "alpha"),
        ({"feedback": "1.5"}, "feedback"),
        ({"polish": "-1"}, "polish"),
        ({"polish": "1.5"}, "polish"),
        ({"content_size": "-1"}, "content_size"),
        ({"format": "gif"}, "format"),
        ({"style_weights": "1,a"}, "style_weights"),
        ({"style_weights": "1,2"}, "style weights given for 1 styles"),
        ({"with_style": False}, "style"),
    ],
)
def test_bad_fields_are_422_naming_the_field(client, tmp_path, fields, field_name):
    response = stylize(client, tmp_path, **fields)
    assert response.status_code == 422
    assert field_name in str(response.json()["detail"])


def test_non_images_are_415_and_do_not_break_the_worker(client, tmp_path):
    text = [("style", ("notes.txt", b"hello", "text/plain"))]
    response = client.post(
        "/v1/stylize", files=[("content", ("c.png", b"\x89PNG\r\n\x1a\n broken", "image/png")), *text]
    )
    assert response.status_code == 415 and "content" in response.json()["detail"]
    assert stylize(client, tmp_path, files=text, with_style=False).status_code == 415
    assert stylize(client, tmp_path, content_size="0").status_code == 200  # the next good request works


def test_upload_limits(app_factory, tmp_path):
    from fastapi.testclient import TestClient

    client = TestClient(app_factory(max_upload_mb=0.005))
    big = make_image(tmp_path / "big.png", (300, 300), seed=5).read_bytes()
    assert len(big) > 0.005 * 2**20
    response = client.post("/v1/stylize", files={"content": ("big.png", big, "image/png")})
    assert response.status_code == 413 and "over the limit" in response.json()["detail"]
    pixels = TestClient(app_factory(max_pixels=1000))
    assert stylize(pixels, tmp_path).status_code == 413


def test_upload_limit_is_enforced_while_streaming(app_factory):
    """No Content-Length: the body is counted as it arrives and cut off at the limit."""
    app = app_factory(max_upload_mb=0.01)
    chunks_sent = 0

    async def body():
        nonlocal chunks_sent
        yield b'--zzz\r\nContent-Disposition: form-data; name="content"; filename="c.png"\r\n'
        yield b"Content-Type: image/png\r\n\r\n"
        for _ in range(1000):  # would be ~8 MB in all
            chunks_sent += 1
            yield b"x" * 8192

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            headers = {"content-type": "multipart/form-data; boundary=zzz"}
            return await http.post("/v1/stylize", content=body(), headers=headers)

    response = asyncio.run(go())
    assert response.status_code == 413
    assert chunks_sent < 50  # stopped reading long before the end


def test_burst_beyond_the_queue_gets_503_and_waiting_stays_bounded(app_factory, tmp_path, stylizer):
    app = app_factory(concurrency=1, queue=2)
    gate = app.state.gate
    slow_stylizer = app.state.stylizer
    original = type(slow_stylizer).__call__
    peak_waiting = 0

    class Slow(type(slow_stylizer)):
        def __call__(self, *args, **kwargs):
            nonlocal peak_waiting
            peak_waiting = max(peak_waiting, gate.waiting)
            time.sleep(0.3)
            return original(self, *args, **kwargs)

    slow_stylizer.__class__ = Slow
    content = png_bytes((40, 40), 1, tmp_path)
    style = png_bytes((40, 40), 2, tmp_path)

    async def one(http):
        files = {"content": ("c.png", content, "image/png"), "style": ("s.png", style, "image/png")}
        return await http.post("/v1/stylize", files=files, data={"content_size": "0"})

    async def burst():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as http:
            return await asyncio.gather(*(one(http) for _ in range(8)))

    responses = asyncio.run(burst())
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 3  # one running + two waiting
    assert codes.count(503) == 5
    assert all(r.headers.get("retry-after") == "2" for r in responses if r.status_code == 503)
    assert peak_waiting <= 2 and gate.waiting == 0


def test_serve_refuses_an_address_it_cannot_listen_on(capsys):
    import socket

    from adain.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    assert (
        capsys.readouterr().err
        == f"adain: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )
    assert main(["serve", "--host", "no-such-host.invalid"]) == 1
    assert capsys.readouterr().err.startswith("adain: error: cannot listen on no-such-host.invalid:8000: ")
    with pytest.raises(SystemExit):
        main(["serve", "--port", "70000"])
    assert "--port: must be at most 65535" in capsys.readouterr().err


def test_browser_mode_files_and_why_it_is_off(app_factory, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    import adain.browser

    monkeypatch.setattr(adain.browser, "SOURCE_ROOT", tmp_path / "nowhere")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADAIN_WEB_RUNTIME", raising=False)
    client = TestClient(app_factory())
    config = client.get("/web.json").json()
    assert config["static"] is False and config["browser"]["available"] is False
    assert "npm ci" in config["browser"]["reason"]
    assert client.get("/models/encoder.onnx").status_code == 404
    assert client.get("/ort/ort.webgpu.min.js").status_code == 404
    page = client.get("/")
    assert page.headers["cross-origin-opener-policy"] == "same-origin"  # isolation, for wasm threads
    assert page.headers["cross-origin-embedder-policy"] == "require-corp"


def test_browser_mode_serves_only_its_own_files(app_factory, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from adain.browser import RUNTIME_FILES

    runtime = tmp_path / "dist"
    runtime.mkdir()
    for name in RUNTIME_FILES:
        (runtime / name).write_text(name)
    (tmp_path / "secret.txt").write_text("no")
    client = TestClient(app_factory(web_runtime=str(runtime)))
    response = client.get("/ort/ort-wasm-simd-threaded.jsep.wasm")
    assert response.status_code == 200 and response.headers["content-type"] == "application/wasm"
    for bad in (
        "/ort/..%2Fsecret.txt",
        "/ort/secret.txt",
        "/models/..%2F..%2Fsecret.txt",
        "/models/weights.pth",
    ):
        assert client.get(bad).status_code == 404


def test_decoder_match_on_the_server(client, tmp_path):
    once = stylize(client, tmp_path, content_size="0", format="png")
    matched = stylize(client, tmp_path, content_size="0", format="png", decoder_match="0.75")
    assert once.status_code == matched.status_code == 200 and once.content != matched.content
    # a built-in style gets the decoder's statistics on the first request that needs them, and keeps them
    waves = client.app.state.builtin["waves"]
    assert stylize(client, tmp_path, with_style=False, style_id="waves").status_code == 200
    assert waves.code.decoder is None
    builtin = stylize(client, tmp_path, with_style=False, style_id="waves", decoder_match="1")
    assert builtin.status_code == 200 and len(waves.code.decoder) == 8
    measured = waves.code
    assert (
        stylize(client, tmp_path, with_style=False, style_id="waves", decoder_match="0.5").status_code == 200
    )
    assert waves.code is measured
    refused = stylize(client, tmp_path, decoder_match="1.5")
    assert refused.status_code == 422 and "decoder_match" in str(refused.json()["detail"])
