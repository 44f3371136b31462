from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adain import images
from adain.nets import Decoder, Encoder
from adain.stylize import Stylizer
from adain.weights import export_decoder, load_encoder_state

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ADAIN_SHARED", ROOT.parent / "shared"))
SHARED_VGG = SHARED / "weights" / "vgg_normalised.pth"
SHARED_IMAGES = SHARED / "images"
CONTENT = SHARED_IMAGES / "content" / "cornell.jpg"
STYLE = SHARED_IMAGES / "style" / "woman_with_hat_matisse.jpg"
STYLE2 = SHARED_IMAGES / "style" / "sketch.png"
MASK = SHARED_IMAGES / "mask" / "mask.png"

needs_shared = pytest.mark.skipif(not SHARED_VGG.is_file(), reason="../shared is not beside the repo")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's cache or decoder settings."""
    home = tmp_path_factory.getbasetemp() / "adain-home"
    monkeypatch.setenv("ADAIN_HOME", str(home))
    monkeypatch.delenv("ADAIN_DECODER", raising=False)


@pytest.fixture(scope="session")
def decoder_file(tmp_path_factory) -> Path:
    """A decoder file for tests of mechanics: seeded random weights, scaled (Kaiming) so that the
    output varies with the features instead of collapsing to one colour."""
    torch.manual_seed(0)
    decoder = Decoder()
    convs = [m for m in decoder if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            conv.bias.zero_()
        convs[-1].weight.mul_(0.1)
        convs[-1].bias.fill_(0.5)
    path = tmp_path_factory.mktemp("weights") / "decoder.safetensors"
    return export_decoder(decoder, path)


@pytest.fixture(scope="session")
def stylizer(decoder_file) -> Stylizer:
    torch.manual_seed(0)
    encoder = Encoder()
    encoder.load_state_dict(load_encoder_state(SHARED_VGG) if SHARED_VGG.is_file() else _random_state())
    decoder = Decoder()
    from adain.weights import load_decoder_state

    decoder.load_state_dict(load_decoder_state(decoder_file))
    # fp32, so that exact comparisons hold on every CPU (bf16 has its own fidelity tests)
    return Stylizer(encoder, decoder, "cpu", precision="fp32")


def _random_state():
    return Encoder().state_dict()


def make_image(path: Path, size=(48, 40), mode="RGB", seed=0, **save) -> Path:
    """A smooth random-ish picture saved at ``path`` in ``mode``."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, 4, 4, generator=g)
    big = torch.nn.functional.interpolate(small, size=(size[1], size[0]), mode="bilinear")
    img = images.to_pil(big)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, **save)
    return path


@pytest.fixture
def small_pair(tmp_path) -> tuple[Path, Path]:
    return make_image(tmp_path / "content.png", (53, 37), seed=1), make_image(
        tmp_path / "style.png", (40, 44), seed=2
    )


def open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def stylize_argv(content: Path, style: Path, out: Path, decoder: Path, *extra: str) -> list[str]:
    """``adain stylize``'s arguments for one content and one style."""
    return ["stylize", str(content), "-s", str(style), "-o", str(out), "--decoder", str(decoder), *extra]


def one_pair_eval_argv(tmp_path: Path, decoder: Path) -> list[str]:
    """``adain eval``'s arguments (all but ``--out``) for the adain method on one small pair made in
    ``tmp_path``, at 32 px."""
    content_dir, style_dir = tmp_path / "c", tmp_path / "s"
    content_dir.mkdir()
    style_dir.mkdir()
    make_image(content_dir / "c.png", (40, 40), seed=1)
    make_image(style_dir / "s.png", (40, 40), seed=2)
    argv = ["eval", "--content-dir", str(content_dir), "--style-dir", str(style_dir), "--size", "32",
            "--decoder", str(decoder), "--method", "adain", "-q"]  # fmt: skip
    return argv + ["--vgg", str(SHARED_VGG)] if SHARED_VGG.is_file() else argv


def exit_status(argv: list[str]) -> int:
    """What ``adain ARGV`` exits with, argparse's own errors included."""
    from adain.cli import main

    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.fixture
def tile_pair(tmp_path):
    """A content large enough for 64 px tiles, and two styles."""
    return (make_image(tmp_path / "c.png", (160, 136), seed=1), make_image(tmp_path / "s.png", (64, 56), seed=2),
            make_image(tmp_path / "t.png", (72, 64), seed=5))  # fmt: skip


def as_array(image: Image.Image) -> np.ndarray:
    """An image's pixels as int16, so that differences of two do not wrap."""
    return np.asarray(image, np.int16)
