"""Inputs an attacker or a careless user would try (issue 16): each is refused with one line, or
handled, never a traceback, code execution, a hang, silent data loss or a silently wrong result."""

import errno
import os
import stat
import threading

import pytest
import torch
from PIL import Image

from adain import files, images
from adain.cli import main
from adain.errors import AdainError, ImageError, WeightsError
from adain.stylize import StyleCode

from .conftest import exit_status, make_image, stylize_argv
from .test_train import dataset, read_log, train_args  # noqa: F401 - the fixture is used by name


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("adain: error:")]
    assert len(lines) == 1, err
    return lines[0]


# -- 1. checkpoints are loaded without running code --------------------------------------------


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # would create the marker file when unpickled


def test_a_checkpoint_with_pickled_code_is_refused_before_it_runs(dataset, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    assert main(train_args(dataset, out, "--max-iter", "1")) == 0
    marker = tmp_path / "pwned"
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    checkpoint["extra"] = _Payload(marker)
    torch.save(checkpoint, out / "checkpoint.pt")
    capsys.readouterr()
    assert main(train_args(dataset, out, "--max-iter", "2", "--resume")) == 1
    assert "pickled objects other than tensors" in one_line_error(capsys)
    assert not marker.exists()


def test_checkpoints_load_with_weights_only(dataset, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    assert main(train_args(dataset, out, "--max-iter", "1")) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["iteration"] == 1


# -- 6. a finished run is never overwritten or its log cut without being asked ------------------


def test_a_finished_run_is_not_restarted_over_without_overwrite(dataset, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    assert main(train_args(dataset, out, "--max-iter", "3")) == 0
    (out / "checkpoint.pt").unlink()  # a finished folder whose checkpoint was cleaned up
    decoder_bytes = (out / "decoder.safetensors").read_bytes()
    capsys.readouterr()
    for extra in ([], ["--resume"]):
        assert main(train_args(dataset, out, "--max-iter", "2", *extra)) == 2
        assert "--overwrite" in one_line_error(capsys)
        assert len(read_log(out)) == 3 and (out / "decoder.safetensors").read_bytes() == decoder_bytes
    assert main(train_args(dataset, out, "--max-iter", "2", "--overwrite")) == 0
    assert [int(r["iteration"]) for r in read_log(out)] == [1, 2]


def test_a_checkpoint_that_is_a_folder_touches_nothing(dataset, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    assert main(train_args(dataset, out, "--max-iter", "2")) == 0
    (out / "checkpoint.pt").unlink()
    (out / "checkpoint.pt").mkdir()
    capsys.readouterr()
    assert main(train_args(dataset, out, "--max-iter", "3", "--resume")) == 1
    assert "is not a file" in one_line_error(capsys)
    assert len(read_log(out)) == 2 and not list(out.glob("*.part")) and not list(out.glob(".*.part"))


# -- 7. a full disk says so, and leaves no partial file -----------------------------------------


def test_a_full_disk_at_a_checkpoint_names_the_cause(dataset, tmp_path, capsys, monkeypatch):  # noqa: F811
    out = tmp_path / "run"
    real = files.write_bytes

    def full_disk(path, data):
        if str(path).endswith("checkpoint.pt"):
            with files.replacing(path) as tmp:
                tmp.write_bytes(bytes(data)[:1000])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data)

    monkeypatch.setattr(files, "write_bytes", full_disk)
    assert main(train_args(dataset, out, "--max-iter", "2")) == 1
    assert (
        "cannot write the checkpoint" in (line := one_line_error(capsys))
        and "No space left on device" in line
    )
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]


# -- 10. garbage in is refused where it enters -------------------------------------------------


def test_non_finite_or_misshapen_styles_are_refused(tmp_path):
    with pytest.raises(AdainError, match="non-finite"):
        StyleCode(torch.full((1, 512, 1, 1), float("nan")), torch.ones(1, 512, 1, 1))
    with pytest.raises(AdainError, match=r"\(1, 512, 1, 1\)"):
        StyleCode(torch.zeros(1, 256, 1, 1), torch.ones(1, 256, 1, 1))
    from safetensors.torch import save_file

    path = tmp_path / "nan.safetensors"
    save_file({"mean": torch.full((1, 512, 1, 1), float("nan")), "std": torch.ones(1, 512, 1, 1)}, str(path),
              metadata={"format": "adain-style"})  # fmt: skip
    with pytest.raises(AdainError, match="nan.safetensors: .*non-finite"):
        StyleCode.load(path)


@pytest.mark.parametrize("dtype", [torch.int32, torch.bool])
def test_a_decoder_of_integers_is_refused(tmp_path, dtype):
    from safetensors.torch import save_file

    from adain import weights
    from adain.nets import Decoder

    state = {k: v.to(dtype) for k, v in Decoder().state_dict().items()}
    path = tmp_path / "d.safetensors"
    save_file(state, str(path))
    with pytest.raises(WeightsError, match="not floating-point"):
        weights.load_decoder_state(path)


def test_style_weights_whose_sum_overflows_are_refused(tmp_path, capsys, decoder_file):
    content, style = (
        make_image(tmp_path / "c.png", (40, 32)),
        make_image(tmp_path / "s.png", (32, 32), seed=1),
    )
    args = ["stylize", str(content), "-s", str(style), str(style), "-o", str(tmp_path / "o.jpg"),
            "--style-weights", "1e308,1e308", "--decoder", str(decoder_file)]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2 and "style weights must be" in capsys.readouterr().err
    assert not (tmp_path / "o.jpg").exists()


# -- 11. the API takes what it documents, and says what is wrong with anything else ---------------


@pytest.mark.parametrize(
    "content",
    [torch.rand(32, 32), torch.rand(1, 32, 32), torch.rand(32, 32, 3), torch.rand(2, 3, 32, 32),
     torch.randint(0, 255, (3, 32, 32)), torch.full((3, 32, 32), float("nan")), b"bytes", None, 3.0],
    ids=["HW", "1HW", "HW3", "batch", "int", "nan", "bytes", "None", "number"],
)  # fmt: skip
def test_bad_api_inputs_are_image_errors(stylizer, content):
    with pytest.raises(ImageError):
        stylizer(content, torch.rand(3, 32, 32))


def test_bad_api_controls_are_adain_errors(stylizer):
    image = torch.rand(3, 32, 32)
    for bad in ({"alpha": "0.5"}, {"alpha": float("nan")}, {"style_weights": ["a"]}):
        with pytest.raises(AdainError):
            stylizer(image, [image], **bad)
    with pytest.raises(AdainError, match="unknown device|unsupported device"):
        from adain.stylize import Stylizer

        Stylizer(stylizer.encoder, stylizer.decoder, device="tpu")
    with pytest.raises(AdainError, match="encoded styles"):
        stylizer.stylize_tensor(torch.rand(1, 3, 32, 32), [image])
    code = stylizer.encode_style(image)
    for batch in (
        torch.rand(0, 3, 32, 32),
        torch.zeros(2, 3, 32, 32, dtype=torch.uint8),
        torch.rand(3, 32, 32),
    ):
        with pytest.raises(ImageError):
            stylizer.stylize_tensor(batch, [code])
        with pytest.raises(ImageError):
            stylizer.stylize_each(batch, [code] * len(batch), [1.0] * len(batch))


def test_a_numpy_array_is_an_image_error(stylizer):
    import numpy as np

    with pytest.raises(ImageError, match="ndarray"):
        stylizer(np.zeros((32, 32, 3), np.uint8), torch.rand(3, 32, 32))


# -- 12. smaller holes --------------------------------------------------------------------------


def test_crf_out_of_range_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["video", "in.mp4", "-s", "s.png", "-o", "o.mp4", "--crf", "999"])
    assert exit_.value.code == 2 and "--crf: must be at most 51" in capsys.readouterr().err


def test_bad_flag_values_all_exit_2(tmp_path, capsys, decoder_file):
    content, style = (
        make_image(tmp_path / "c.png", (40, 32)),
        make_image(tmp_path / "s.png", (32, 32), seed=1),
    )
    for extra in (["--tile", "5"], ["--alpha", "2"], ["--style-weights", "1,2"]):
        assert exit_status(stylize_argv(content, style, tmp_path / "o.jpg", decoder_file, *extra)) == 2, extra
    capsys.readouterr()


def test_exported_decoders_are_readable_like_any_file(dataset, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    assert main(train_args(dataset, out, "--max-iter", "1")) == 0
    modes = {stat.S_IMODE((out / name).stat().st_mode) for name in ("decoder.safetensors", "decoder.pth")}
    assert len(modes) == 1 and modes.pop() & 0o044 == 0o044


def test_a_read_only_output_folder_is_refused_before_any_work(tmp_path, capsys, decoder_file, monkeypatch):
    from adain import files

    content, style = (
        make_image(tmp_path / "c.png", (40, 32)),
        make_image(tmp_path / "s.png", (32, 32), seed=1),
    )
    out = tmp_path / "out"
    out.mkdir()
    loaded = []
    monkeypatch.setattr("adain.cli.args.stylizer_from", lambda *a, **k: loaded.append(1))

    def read_only(folder):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder))

    monkeypatch.setattr(files, "check_writable", read_only)
    assert (
        main(["stylize", str(content), "-s", str(style), "-o", str(out), "--decoder", str(decoder_file)]) == 1
    )
    assert "Read-only file system" in one_line_error(capsys) and not loaded


def test_concurrent_decodes_leave_pillows_guard_in_place(tmp_path):
    path = make_image(tmp_path / "a.png", (64, 64))
    saved = Image.MAX_IMAGE_PIXELS

    def decode():
        for _ in range(50):
            images.load_image(path)

    threads = [threading.Thread(target=decode) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert saved == Image.MAX_IMAGE_PIXELS


# -- 2. every image the process decodes is under the memory budget -----------------------------


def test_a_style_too_large_for_the_budget_is_refused_before_resizing(tmp_path, capsys, decoder_file):
    strip = tmp_path / "strip.png"
    Image.new("RGB", (1, 5000), (90, 120, 150)).save(strip)  # 128 px short side: 128 x 640,000 pixels
    content = make_image(tmp_path / "c.png", (40, 32))
    args = ["stylize", str(content), "-s", str(strip), "-o", str(tmp_path / "o.jpg"), "--style-size", "128",
            "--decoder", str(decoder_file)]  # fmt: skip
    assert main(args) == 1
    assert "memory budget of 2048 MB is too small for a 128x640000 image" in one_line_error(capsys)


def test_a_style_over_the_budget_is_encoded_in_tiles_with_the_same_statistics(stylizer):
    from adain import tiling

    style = torch.rand(3, 400, 336)  # multiples of the stride: the tiles see exactly the whole image
    whole = stylizer.encode_style(style)
    tight = stylizer.with_options(max_memory_mb=tiling.RUNTIME_MB + stylizer.overhead_mb + 60)
    assert tiling.auto_tile(400, 336, tight.options.max_memory_mb, tight.overhead_mb) is not None
    tiled = tight.encode_style(style)
    assert torch.allclose(tiled.mean, whole.mean, rtol=1e-4, atol=1e-5)
    assert torch.allclose(tiled.std, whole.std, rtol=1e-4, atol=1e-5)


# -- 3, 4. the server decodes nothing before a request holds its place; style uploads queue too --


def _slow_app(stylizer, seconds, **options):
    import time

    from adain.serve import ServeConfig, create_app

    app = create_app(ServeConfig(**options), stylizer=stylizer)
    held = app.state.stylizer
    original = type(held).__call__

    class Slow(type(held)):
        def __call__(self, *args, **kwargs):
            time.sleep(seconds)
            return original(self, *args, **kwargs)

    held.__class__ = Slow
    return app


def test_requests_beyond_the_queue_are_answered_without_decoding(stylizer, tmp_path, monkeypatch):
    import asyncio
    import io
    import time

    import httpx

    from adain import serve

    decoded = []
    real = serve._decode
    monkeypatch.setattr(serve, "_decode", lambda *a: decoded.append(a[1]) or real(*a))
    app = _slow_app(stylizer, 0.5, concurrency=1, queue=0)
    buffer = io.BytesIO()
    Image.new("RGB", (2000, 2000), (120, 90, 60)).save(buffer, "PNG")  # flat: a small upload, 4 MP decoded
    big = buffer.getvalue()
    small = make_image(tmp_path / "s.png", (32, 32)).read_bytes()

    async def one(http, content):
        files = {"content": ("c.png", content, "image/png"), "style": ("s.png", small, "image/png")}
        start = time.perf_counter()
        response = await http.post("/v1/stylize", files=files, data={"content_size": "64"})
        return response.status_code, time.perf_counter() - start

    async def burst():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as http:
            first = asyncio.create_task(one(http, small))
            await asyncio.sleep(0.1)  # the first holds the only slot
            rest = await asyncio.gather(*(one(http, big) for _ in range(6)))
            return [await first, *rest]

    results = asyncio.run(burst())
    assert results[0][0] == 200
    assert [code for code, _ in results[1:]] == [503] * 6
    assert max(seconds for _, seconds in results[1:]) < 0.5
    assert len(decoded) == 2  # the admitted request's content and style; none of the refused ones


def test_style_uploads_wait_at_the_same_gate(stylizer, tmp_path):
    import asyncio

    import httpx

    app = _slow_app(stylizer, 0.5, concurrency=1, queue=0)
    small = make_image(tmp_path / "s.png", (32, 32)).read_bytes()

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as http:
            files = {"content": ("c.png", small, "image/png"), "style": ("s.png", small, "image/png")}
            busy = asyncio.create_task(http.post("/v1/stylize", files=files, data={"content_size": "0"}))
            await asyncio.sleep(0.1)
            upload = await http.post("/v1/styles", files={"style": ("s.png", small, "image/png")})
            return (await busy).status_code, upload.status_code

    assert asyncio.run(go()) == (200, 503)


# -- 5. work whose client has gone stops, and frees its slot ----------------------------------


def test_the_cancelled_option_stops_tiled_work_at_the_next_tile(stylizer):
    from adain.stylize import Cancelled

    calls = []
    stop_after = 3
    cancellable = stylizer.with_options(tile=64, cancelled=lambda: calls.append(1) or len(calls) > stop_after)
    with pytest.raises(Cancelled):
        cancellable(torch.rand(3, 256, 256), torch.rand(3, 64, 64))
    assert len(calls) == stop_after + 1  # checked before each tile's pass, stopped at the first "yes"


def test_an_abandoned_request_frees_its_slot_within_two_seconds(stylizer, tmp_path):
    import socket
    import time

    uvicorn = pytest.importorskip("uvicorn")
    from adain.serve import ServeConfig, create_app

    app = create_app(ServeConfig(concurrency=1, queue=0), stylizer=stylizer.with_options(tile=64))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        photo = make_image(tmp_path / "c.png", (40, 32)).read_bytes()
        boundary = "zzz"
        parts = [("content", "c.png", photo), ("style", "s.png", photo)]
        body = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{file}"\r\n'
            f"Content-Type: image/png\r\n\r\n".encode()
            + data
            + b"\r\n"
            for name, file, data in parts
        )
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="content_size"\r\n\r\n1536\r\n--{boundary}--\r\n'.encode()
        head = (f"POST /v1/stylize HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
        leaving = socket.create_connection(("127.0.0.1", port))
        leaving.sendall(head + body)  # minutes of tiles at 1536 px with 64 px tiles
        time.sleep(1.0)
        leaving.close()
        left = time.monotonic()
        import httpx

        files = {"content": ("c.png", photo, "image/png"), "style": ("s.png", photo, "image/png")}
        status = None
        while time.monotonic() - left < 10:
            status = httpx.post(
                f"http://127.0.0.1:{port}/v1/stylize", files=files, data={"content_size": "0"}
            ).status_code
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200 and time.monotonic() - left < 2.5
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_server_small_holes(tmp_path, decoder_file):
    from fastapi.testclient import TestClient

    from adain.serve import ServeConfig, create_app
    from adain.stylize import Stylizer

    from .conftest import SHARED_VGG

    stylizer = Stylizer.from_pretrained(SHARED_VGG if SHARED_VGG.is_file() else None, decoder_file, "cpu")
    client = TestClient(create_app(ServeConfig(), stylizer=stylizer))
    photo = make_image(tmp_path / "c.png", (53, 37)).read_bytes()
    files = [("content", ("c.png", photo, "image/png")), ("style", ("s.png", photo, "image/png"))]
    too_small = client.post("/v1/stylize", files=files, data={"content_size": "4"})
    assert too_small.status_code == 422 and "too small" in too_small.json()["detail"]
    assert client.get("/healthz").json()["decoder"] == decoder_file.name  # not where it lives


def test_one_line_errors_keep_the_reason_and_drop_the_noise():
    assert (
        files.first_line(OSError(errno.ENOSPC, "No space left on device", "/x")) == "No space left on device"
    )
    assert (
        files.first_line(ValueError("bad header. The file may be cut short. Try again.\nmore"))
        == "bad header"
    )
    assert files.first_line(KeyError(105)) == "KeyError"  # a number alone says nothing
    assert files.first_line(RuntimeError()) == "RuntimeError"
