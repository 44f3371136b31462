import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from adain.cli import main  # noqa: E402
from adain.export import OnnxNet, export_onnx  # noqa: E402
from adain.stylize import Stylizer  # noqa: E402

from .conftest import SHARED_VGG, make_image  # noqa: E402


def psnr(a, b):
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, decoder_file):
    out = tmp_path_factory.mktemp("onnx")
    export_onnx(out, SHARED_VGG if SHARED_VGG.is_file() else None, decoder_file)
    return out


def test_export_writes_checked_models_and_a_description(exported, decoder_file):
    for name in ("encoder.onnx", "decoder.onnx", "decoder_match.onnx"):
        onnx.checker.check_model(str(exported / name))
    description = json.loads((exported / "adain.json").read_text())
    assert description["encoder"]["output"] == "relu4_1" and description["adain"]["eps"] == 1e-5


@pytest.mark.parametrize("size", [(1, 3, 64, 64), (2, 3, 72, 40)])
def test_onnx_runtime_matches_pytorch_at_any_size(exported, stylizer, size):
    x = torch.rand(size)
    encoder = OnnxNet(exported / "encoder.onnx")
    decoder = OnnxNet(exported / "decoder.onnx")
    with torch.no_grad():
        features = stylizer.encoder(x)
        assert torch.allclose(encoder(x), features, rtol=1e-4, atol=1e-3)
        assert torch.allclose(decoder(features), stylizer.decoder(features), atol=1e-4)


def test_the_onnx_backend_stylizes_like_pytorch_with_every_control(tmp_path, decoder_file, monkeypatch):
    monkeypatch.setenv("ADAIN_HOME", str(tmp_path / "home"))
    vgg = SHARED_VGG if SHARED_VGG.is_file() else None
    ours = Stylizer.from_pretrained(vgg, decoder_file, "cpu", fast=False)
    onnx_backend = Stylizer.from_pretrained(vgg, decoder_file, "cpu", backend="onnx")
    assert onnx_backend.backend.describe() == "cpu, ONNX Runtime float32"
    content = make_image(tmp_path / "c.png", (60, 44), seed=1)
    styles = [make_image(tmp_path / f"s{i}.png", (40, 40), seed=2 + i) for i in range(2)]
    mask = make_image(tmp_path / "m.png", (60, 44), seed=9, mode="L")
    for controls in ({}, {"alpha": 0.5}, {"style_weights": [1, 3]}, {"mask": mask}, {"preserve_color": True}):
        chosen = styles if controls.get("style_weights") or controls.get("mask") else styles[0]
        assert psnr(onnx_backend(content, chosen, **controls), ours(content, chosen, **controls)) >= 45
    tiled = onnx_backend.with_options(tile=64)
    big = make_image(tmp_path / "big.png", (200, 168), seed=3)
    assert psnr(tiled(big, styles[0]), ours(big, styles[0])) >= 35


def test_the_onnx_backend_follows_decoder_match(tmp_path, decoder_file, monkeypatch):
    """``decoder_match.onnx``: the style's statistics and the matched image as the torch backend
    makes them, with a blend and with a mask; an image that needs tiles is refused in one line."""
    from adain.errors import AdainError

    monkeypatch.setenv("ADAIN_HOME", str(tmp_path / "home"))
    vgg = SHARED_VGG if SHARED_VGG.is_file() else None
    ours = Stylizer.from_pretrained(vgg, decoder_file, "cpu", fast=False).with_options(decoder_match=0.75)
    theirs = Stylizer.from_pretrained(vgg, decoder_file, "cpu", backend="onnx").with_options(
        decoder_match=0.75
    )
    content = make_image(tmp_path / "c.png", (60, 44), seed=1)
    styles = [make_image(tmp_path / f"s{i}.png", (40, 40), seed=2 + i) for i in range(2)]
    mask = make_image(tmp_path / "m.png", (60, 44), seed=9, mode="L")
    code, expected = theirs.encode_style(styles[0]), ours.encode_style(styles[0])
    for (mean, std), (want_mean, want_std) in zip(code.decoder, expected.decoder, strict=True):
        assert torch.allclose(mean, want_mean, rtol=1e-3, atol=1e-3) and torch.allclose(
            std, want_std, rtol=1e-3, atol=1e-3
        )
    plain = Stylizer.from_pretrained(vgg, decoder_file, "cpu", backend="onnx")
    for controls in ({}, {"alpha": 0.5, "style_weights": [1, 3]}, {"mask": mask}):
        chosen = styles if controls.get("style_weights") or controls.get("mask") else styles[0]
        matched = theirs(content, chosen, **controls)
        assert psnr(matched, ours(content, chosen, **controls)) >= 45
        assert psnr(matched, plain(content, chosen, **controls)) < 45  # the match did something
    big = make_image(tmp_path / "big.png", (200, 168), seed=3)
    with pytest.raises(AdainError, match="needs tiles"):
        theirs.with_options(tile=64)(big, styles[0])


def test_export_refuses_to_replace_an_export_and_the_cli_writes_one(tmp_path, decoder_file, capsys):
    out = tmp_path / "models"
    args = ["export", str(out), "--decoder", str(decoder_file)] + (
        ["--vgg", str(SHARED_VGG)] if SHARED_VGG.is_file() else []
    )
    assert main(args) == 0 and "encoder.onnx" in capsys.readouterr().err
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_a_missing_onnx_extra_is_one_line(monkeypatch, tmp_path, capsys, decoder_file):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name.startswith("onnx"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    assert main(["export", str(tmp_path / "m"), "--decoder", str(decoder_file)]) == 1
    assert "pip install 'adain[onnx]'" in capsys.readouterr().err


def test_fp16_export_halves_the_files_and_stays_within_40_db(tmp_path, exported, stylizer, decoder_file):
    from adain import images
    from adain.nets import adain

    from .conftest import CONTENT, STYLE

    half = export_onnx(
        tmp_path / "half", SHARED_VGG if SHARED_VGG.is_file() else None, decoder_file, fp16=True
    )
    for name in ("encoder.onnx", "decoder.onnx"):
        onnx.checker.check_model(str(half / name))
        ratio = (half / name).stat().st_size / (exported / name).stat().st_size
        assert 0.45 < ratio < 0.55
    assert json.loads((half / "adain.json").read_text())["weights"].startswith("float16")
    content = images.load_square(CONTENT, 256)
    style = images.load_square(STYLE, 256)

    def run(encode, decode):
        with torch.no_grad():
            return decode(adain(encode(content), encode(style))).clamp(0, 1)[0]

    ours = run(stylizer.encoder, stylizer.decoder)
    theirs = run(OnnxNet(half / "encoder.onnx"), OnnxNet(half / "decoder.onnx"))
    db = psnr(images.to_pil(theirs), images.to_pil(ours))
    print(f"fp16 weights: {db:.1f} dB")
    assert db >= 40


def test_web_export_is_a_static_folder_and_refuses_to_replace_one(tmp_path, decoder_file, capsys):
    from adain.browser import RUNTIME_FILES, runtime_dir

    if runtime_dir() is None:
        pytest.skip("ONNX Runtime Web is not installed (npm ci)")
    out = tmp_path / "site"
    args = ["export", str(out), "--web", "--fp16", "--decoder", str(decoder_file)] + (
        ["--vgg", str(SHARED_VGG)] if SHARED_VGG.is_file() else []
    )
    assert main(args) == 0 and "static page" in capsys.readouterr().err
    assert json.loads((out / "web.json").read_text())["static"] is True
    assert json.loads((out / "web.json").read_text())["polish"] == 0  # no server to take the steps
    assert json.loads((out / "web.json").read_text())["decoder_match"] == 0  # a decoder trained without it
    assert all((out / "ort" / name).is_file() for name in RUNTIME_FILES)
    assert all((out / "models" / name).is_file() for name in ("encoder.onnx", "decoder.onnx", "adain.json"))
    assert "stylizeInBrowser" in (out / "index.html").read_text()
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err


def test_web_export_without_the_runtime_is_one_line(tmp_path, decoder_file, capsys, monkeypatch):
    import adain.browser

    monkeypatch.setattr(adain.browser, "SOURCE_ROOT", tmp_path / "nowhere")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADAIN_WEB_RUNTIME", raising=False)
    assert main(["export", str(tmp_path / "site"), "--web", "--decoder", str(decoder_file)]) == 1
    err = capsys.readouterr().err
    assert "npm ci" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "site").exists()
    assert main(["export", str(tmp_path / "x"), "--web", "--web-runtime", str(tmp_path)]) == 2
    assert "ort.webgpu.min.js" in capsys.readouterr().err


def test_a_wide_decoder_exports_at_its_width(tmp_path, decoder_file):
    from adain import weights
    from adain.nets import widen_decoder

    wide = widen_decoder(weights.load_decoder(decoder_file)[0], 1.25).eval()
    path = weights.export_decoder(wide, tmp_path / "wide.safetensors")
    export_onnx(tmp_path / "onnx", SHARED_VGG if SHARED_VGG.is_file() else None, path)
    description = json.loads((tmp_path / "onnx" / "adain.json").read_text())
    assert description["decoder"]["width"] == 1.25 and description["decoder"]["metadata"]["width"] == "1.25"
    features = torch.rand(1, 512, 6, 7)
    with torch.no_grad():
        assert torch.allclose(
            OnnxNet(tmp_path / "onnx" / "decoder.onnx")(features), wide(features), atol=1e-4
        )
