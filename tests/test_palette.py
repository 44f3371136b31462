"""The palette option: the output's colours moved towards the style image's RGB mean and covariance."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from adain import images
from adain.colour import blend_palettes, palette_of
from adain.errors import AdainError
from adain.stylize import StyleCode

from .conftest import exit_status, make_image, one_pair_eval_argv, stylize_argv
from .test_dataset import dataset_args, manifest, tree  # noqa: F401 (the fixture)


def distance_to(palette, image: Image.Image) -> float:
    """How far an output's RGB mean and covariance lie from ``palette``'s."""
    mean, cov = palette_of(images.to_tensor(image))
    return (torch.linalg.norm(mean - palette[0]) + torch.linalg.norm(cov - palette[1])).item()


@pytest.fixture
def warm_style(tmp_path):
    """A red-orange texture: a palette far from what a random decoder makes."""
    rng = np.random.default_rng(3)
    pixels = np.stack([rng.integers(170, 255, (40, 40)), rng.integers(40, 120, (40, 40)),
                       rng.integers(0, 40, (40, 40))], axis=-1).astype(np.uint8)  # fmt: skip
    path = tmp_path / "warm.png"
    Image.fromarray(pixels).save(path)
    return path


def test_the_share_moves_the_output_to_the_styles_palette(stylizer, tmp_path, warm_style):
    content = make_image(tmp_path / "c.png", (48, 40), seed=1)
    target = palette_of(images.to_tensor(images.load_image(warm_style)))
    distances = [
        distance_to(target, stylizer.with_options(palette=k)(content, warm_style)) for k in (0, 0.5, 1)
    ]
    assert distances[0] > distances[1] > distances[2]
    assert distances[2] < 0.15 * distances[0]  # all the way: the style's palette, up to the clamp
    # alpha scales it: no style, no style palette
    plain = np.asarray(stylizer(content, warm_style, alpha=0.0), np.int16)
    assert np.array_equal(
        np.asarray(stylizer.with_options(palette=1)(content, warm_style, alpha=0.0), np.int16), plain
    )


def test_an_encoded_style_carries_its_palette(stylizer, tmp_path, warm_style):
    content = make_image(tmp_path / "c.png", (48, 40), seed=1)
    painter = stylizer.with_options(palette=0.5)
    code = painter.encode_style(warm_style)
    code.save(tmp_path / "warm.style.safetensors")
    loaded = StyleCode.load(tmp_path / "warm.style.safetensors")
    assert torch.allclose(loaded.palette[1], code.palette[1].float().double())
    assert painter(content, loaded) == painter(content, warm_style)
    old = StyleCode(code.mean, code.std, "old")  # as a code saved before palettes
    with pytest.raises(AdainError, match="no palette"):
        painter(content, old)


def test_with_a_mask_each_region_moves_to_its_own_styles_palette(stylizer, tmp_path, warm_style):
    """White takes the first style's palette, black the second's, each measured on its own region;
    the frames of ``stylize_tensor`` with a mask (video) the same."""
    content = make_image(tmp_path / "c.png", (48, 40), seed=1)
    cool = tmp_path / "cool.png"
    Image.fromarray(np.full((40, 40, 3), (30, 90, 200), np.uint8) + np.random.default_rng(4).integers(
        0, 40, (40, 40, 3), dtype=np.uint8)).save(cool)  # fmt: skip
    left = np.zeros((40, 48), np.uint8)
    left[:, :24] = 255
    mask = tmp_path / "m.png"
    Image.fromarray(left).save(mask)
    painter = stylizer.with_options(palette=1)
    styles = [warm_style, cool]
    moved, plain = (s(content, styles, mask=mask, content_size=0) for s in (painter, stylizer))
    palettes = [palette_of(images.to_tensor(images.load_image(s))) for s in styles]

    def region_distance(image: Image.Image, k: int) -> float:
        half = image.crop((0, 0, 24, 40) if k == 0 else (24, 0, 48, 40))
        return distance_to(palettes[k], half)

    for k in (0, 1):
        assert region_distance(moved, k) < 0.5 * region_distance(plain, k)
    codes = [painter.encode_style(s) for s in styles]
    frames = painter.stylize_tensor(images.to_tensor(images.load_image(content)), codes, mask=mask)
    assert np.abs(np.asarray(images.to_pil(frames), np.int16) - np.asarray(moved, np.int16)).max() <= 1


def test_what_palette_cannot_take_is_refused(stylizer, tmp_path, warm_style):
    content = make_image(tmp_path / "c.png", (48, 40), seed=1)
    painter = stylizer.with_options(palette=0.5)
    with pytest.raises(AdainError, match="choose one"):
        painter(content, warm_style, preserve_color=True)
    batch = images.to_tensor(images.load_image(content))
    code = painter.encode_style(warm_style)
    with pytest.raises(AdainError, match="no palette"):
        painter.stylize_tensor(batch, [StyleCode(code.mean, code.std)])
    with pytest.raises(AdainError, match="palette must be from 0 to 1"):
        stylizer.with_options(palette=1.5)


def test_blended_palettes_are_the_pooled_pixels():
    torch.manual_seed(0)
    a, b = torch.rand(1, 3, 10, 10) * 0.5, torch.rand(1, 3, 10, 10) * 0.3 + 0.6
    mean, cov = blend_palettes([palette_of(a), palette_of(b)], [0.5, 0.5])
    pooled_mean, pooled_cov = palette_of(torch.cat([a, b], dim=3))
    assert torch.allclose(mean, pooled_mean) and torch.allclose(cov, pooled_cov, atol=1e-6)


def test_the_cli_and_the_evaluation_take_it(decoder_file, tmp_path, warm_style):
    content = make_image(tmp_path / "c.png", (48, 40), seed=1)
    out = tmp_path / "out.png"
    assert (
        exit_status(
            stylize_argv(
                content, warm_style, out, decoder_file, "--palette", "0.5", "--content-size", "0", "-q"
            )
        )
        == 0
    )
    assert Image.open(out).size == (48, 40)
    for bad in (["--palette", "2"], ["--palette", "0.5", "--preserve-color"]):
        assert exit_status(stylize_argv(content, warm_style, tmp_path / "x.png", decoder_file, *bad)) == 2
    report = tmp_path / "report"
    assert (
        exit_status([*one_pair_eval_argv(tmp_path, decoder_file), "--palette", "0.5", "--out", str(report)])
        == 0
    )
    assert json.loads((report / "summary.json").read_text())["palette"] == 0.5


def test_a_dataset_takes_it_and_records_it(tree, tmp_path, decoder_file):  # noqa: F811 (the fixture)
    plain, recoloured = tmp_path / "plain", tmp_path / "recoloured"
    assert exit_status(dataset_args(tree, plain, decoder_file, "--ext", "png")) == 0
    assert exit_status(dataset_args(tree, recoloured, decoder_file, "--ext", "png", "--palette", "1")) == 0
    assert json.loads((recoloured / "dataset.json").read_text())["weights"]["palette"] == 1
    assert "palette" not in json.loads((plain / "dataset.json").read_text())["weights"]
    rows = manifest(recoloured)
    assert {r["status"] for r in rows} == {"ok"}
    style = images.to_tensor(images.load_image(tree[1] / rows[0]["style"]))
    a, b = (images.load_image(out / rows[0]["output"]) for out in (plain, recoloured))
    target = palette_of(style)
    assert distance_to(target, b) < distance_to(target, a)


def test_batches_take_it_image_by_image(stylizer, tmp_path, warm_style):
    painter = stylizer.with_options(palette=0.5)
    codes = [
        painter.encode_style(warm_style),
        painter.encode_style(make_image(tmp_path / "cool.png", seed=8)),
    ]
    contents = [make_image(tmp_path / f"c{i}.png", (48, 40), seed=i) for i in (1, 2)]
    batch = torch.cat([images.to_tensor(images.load_image(c)) for c in contents])
    each = painter.stylize_each(batch, codes, [1.0, 0.5])
    for i, (code, alpha) in enumerate(zip(codes, [1.0, 0.5], strict=True)):
        assert torch.allclose(
            each[i : i + 1], painter.stylize_tensor(batch[i : i + 1], [code], alpha), atol=1e-4
        )
    moved, plain = (s.stylize_tensor(batch[:1], codes[:1]) for s in (painter, stylizer))
    assert distance_to(codes[0].palette, images.to_pil(moved)) < distance_to(
        codes[0].palette, images.to_pil(plain)
    )
