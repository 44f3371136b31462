"""The ``polish`` option: a few optimisation steps on AdaIN's output towards the paper's objective."""

import json

import numpy as np
import pytest
import torch

from adain import defaults, images
from adain.cli import main
from adain.errors import AdainError
from adain.evaluate import losses
from adain.gatys import polish, polish_targets
from adain.losses import content_loss, style_loss_to
from adain.nets import mean_std, taps
from adain.stylize import Stylizer, StylizerOptions

from .conftest import (
    CONTENT,
    STYLE,
    exit_status,
    make_image,
    needs_shared,
    one_pair_eval_argv,
    stylize_argv,
)


def objective(encoder, image, content_feat, targets) -> float:
    with torch.no_grad():
        feats = taps(encoder, image)
        style = defaults.POLISH_STYLE_WEIGHT * style_loss_to(feats, targets)
        return (content_loss(feats[-1], content_feat) + style).item()


def test_each_step_count_lowers_the_objective_and_keeps_the_image_in_range(stylizer, tmp_path):
    encoder = stylizer.encode_fp32
    content = images.to_tensor(images.load_image(make_image(tmp_path / "c.png", (64, 48), seed=3)))
    style = images.to_tensor(images.load_image(make_image(tmp_path / "s.png", (56, 56), seed=4)))
    with torch.inference_mode():  # as the pipeline calls it
        content_feat = encoder(content)
        targets = [mean_std(f) for f in taps(encoder, style)]
        start = stylizer.stylize_tensor(content, [stylizer.encode_style(style)])
        kept = start.clone()
        polished = {n: polish(encoder, start, content_feat, targets, n) for n in (0, 2, 6)}
    assert torch.equal(start, kept)  # the input is left as it was
    assert torch.equal(polished[0], start.clamp(0, 1))
    scores = [objective(encoder, polished[n], content_feat, targets) for n in (0, 2, 6)]
    assert scores[0] > scores[1] > scores[2]
    assert all(p.shape == start.shape and p.min() >= 0 and p.max() <= 1 for p in polished.values())


def test_an_overshooting_step_is_not_kept(stylizer, tmp_path):
    """An image already near its targets: steps at a rate far above polish's move every pixel too
    far, and polish gives back the best image it scored, never one worse than it started."""
    encoder = stylizer.encode_fp32
    image = images.to_tensor(images.load_image(make_image(tmp_path / "i.png", (64, 48), seed=8)))
    with torch.inference_mode():
        feats = taps(encoder, image)
        content_feat, targets = feats[-1], [(mean * 1.01, std) for mean, std in map(mean_std, feats)]
        start = objective(encoder, image, content_feat, targets)
        wild = polish(encoder, image, content_feat, targets, 3, lr=0.3)
        gentle = polish(encoder, image, content_feat, targets, 3, lr=0.001)
    assert torch.equal(wild, image)  # every step was worse: the start comes back
    assert objective(encoder, gentle, content_feat, targets) < start


def test_bf16_steps_land_where_fp32_steps_do(stylizer, tmp_path):
    encoder = stylizer.encode_fp32
    content = images.to_tensor(images.load_image(make_image(tmp_path / "c.png", (64, 48), seed=3)))
    style = images.to_tensor(images.load_image(make_image(tmp_path / "s.png", (56, 56), seed=4)))
    with torch.inference_mode():
        content_feat = encoder(content)
        targets = [mean_std(f) for f in taps(encoder, style)]
        start = stylizer.stylize_tensor(content, [stylizer.encode_style(style)])
        made = {
            dtype: polish(encoder, start, content_feat, targets, 3, dtype=dtype)
            for dtype in (None, torch.bfloat16)
        }
    scores = {dtype: objective(encoder, image, content_feat, targets) for dtype, image in made.items()}
    assert not torch.equal(made[None], made[torch.bfloat16])  # the steps did run in bf16
    assert scores[torch.bfloat16] == pytest.approx(scores[None], rel=0.02)
    assert scores[torch.bfloat16] < objective(encoder, start, content_feat, targets)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_polish_steps_in_the_pipelines_bf16_and_in_fp32_otherwise(stylizer, tmp_path, monkeypatch, precision):
    """``Stylizer.__call__`` and ``adain eval`` both step in what ``polish_arithmetic`` says."""
    import adain.evaluate
    import adain.stylize
    from adain.evaluate import evaluate

    seen = []

    def recording(*args, dtype, **kw):
        seen.append(dtype)
        return polish(*args, dtype=dtype, **kw)

    monkeypatch.setattr(adain.stylize, "polish", recording)
    monkeypatch.setattr(adain.evaluate, "polish", recording)
    options = StylizerOptions(polish=1)
    other = Stylizer(stylizer.encoder, stylizer.decoder, "cpu", precision=precision, options=options)
    content, style = make_image(tmp_path / "c.png", (40, 32), seed=1), make_image(tmp_path / "s.png", seed=2)
    other(content, style)
    evaluate(other, [content], [style], size=32, progress=False)
    low = torch.bfloat16 if precision == "bf16" else None
    assert seen == [low, low] and other.polish_arithmetic[1] == low


def test_targets_blend_the_styles_and_give_way_to_the_content_with_alpha():
    one = [(torch.full((1, 2, 1, 1), 1.0), torch.full((1, 2, 1, 1), 2.0))]
    two = [(torch.full((1, 2, 1, 1), 3.0), torch.full((1, 2, 1, 1), 6.0))]
    own = [(torch.zeros(1, 2, 1, 1), torch.ones(1, 2, 1, 1))]
    (mean, std), = polish_targets([one, two], [0.25, 0.75], 1.0, own)  # fmt: skip
    assert torch.allclose(mean, torch.full_like(mean, 2.5)) and torch.allclose(std, torch.full_like(std, 5.0))
    (mean, std), = polish_targets([one], [1.0], 0.5, own)  # fmt: skip
    assert torch.allclose(mean, torch.full_like(mean, 0.5)) and torch.allclose(std, torch.full_like(std, 1.5))


@needs_shared
def test_polish_brings_the_shipped_decoders_output_nearer_its_style():
    stylizer = Stylizer.from_pretrained(device="cpu", precision="fp32")  # the shipped pair
    content = images.load_square(CONTENT, 256, 10**8)
    style = images.load_square(STYLE, 256, 10**8)
    with torch.inference_mode():
        content_feat = stylizer.encode_fp32(content)
        style_stats = [mean_std(f) for f in taps(stylizer.encode_fp32, style)]
    measured = []
    for steps in (0, 3):
        out = stylizer.with_options(polish=steps)(CONTENT, STYLE, content_size=256, style_size=256, crop=True)
        measured.append(losses(stylizer, images.to_tensor(out), content_feat, style_stats))
    (content_before, style_before, _), (content_after, style_after, _) = measured
    assert style_after < 0.8 * style_before  # three steps take a fifth off at least (about half at 512²)
    assert content_after < 1.05 * content_before


def test_polish_without_a_budget_given_takes_a_16_9_photo_at_512_px(stylizer):
    photo = torch.zeros(1, 3, 512, 910)  # the CLI's and the page's default size; polish never tiles
    polished = stylizer.with_options(polish=3)
    assert polished.options.memory_mb == defaults.POLISH_MAX_MEMORY_MB
    polished._check_polish(photo, ["style"], None)
    assert stylizer.options.memory_mb == defaults.MAX_MEMORY_MB  # a single pass tiles instead
    with pytest.raises(AdainError, match="over the memory budget of 2,048 MB"):  # a budget given wins
        polished.with_options(max_memory_mb=defaults.MAX_MEMORY_MB)._check_polish(photo, ["style"], None)


def test_what_polish_cannot_take_is_refused_before_any_work(stylizer, tmp_path):
    content = make_image(tmp_path / "c.png", (64, 48), seed=1)
    style, other = make_image(tmp_path / "s.png", seed=2), make_image(tmp_path / "o.png", seed=5)
    mask = make_image(tmp_path / "m.png", (64, 48), seed=6, mode="L")
    polished = stylizer.with_options(polish=2)
    with pytest.raises(AdainError, match="polish does not take a mask"):
        polished(content, [style, other], mask=mask)
    with pytest.raises(AdainError, match="this encoded style has relu4_1 only"):
        polished(content, stylizer.encode_style(style))  # a stylizer that does not polish
    with pytest.raises(AdainError, match=r"polishing a 64x48 image takes about [\d,]+ MB"):
        stylizer.with_options(polish=2, max_memory_mb=stylizer.overhead_mb + 300.5)(content, style)
    # a content the budget can polish, a style it could only encode in tiles
    tight = stylizer.with_options(polish=2, max_memory_mb=stylizer.overhead_mb + 500)
    big_style = make_image(tmp_path / "big.png", (1200, 1200), seed=7)
    with pytest.raises(AdainError, match="polish measures the style whole, and a 1200x1200 style"):
        tight(content, [style, big_style])
    batch = images.to_tensor(images.load_image(content))
    for method in (polished.stylize_tensor, polished.stylize_each):
        with pytest.raises(AdainError, match="polish works on one image at a time"):
            method(
                batch, [polished.encode_style(style)], *([[1.0]] if method == polished.stylize_each else [])
            )


def test_a_style_encoded_for_polish_is_the_image_at_four_taps_and_saves(stylizer, tmp_path):
    from safetensors.torch import load_file, save_file

    from adain.stylize import StyleCode

    content, style = make_image(tmp_path / "c.png", (40, 32), seed=1), make_image(tmp_path / "s.png", seed=2)
    polished = stylizer.with_options(polish=2)
    code = polished.encode_style(style)
    assert [m.shape[1] for m, _ in code.taps] == [64, 128, 256, 512]
    assert torch.equal(code.mean, code.taps[-1][0]) and torch.equal(code.std, code.taps[-1][1])
    saved = tmp_path / "s.safetensors"
    code.save(saved)
    loaded = StyleCode.load(saved)
    from_image = np.asarray(polished(content, style))
    assert np.array_equal(np.asarray(polished(content, code)), from_image)
    assert np.array_equal(np.asarray(polished(content, loaded)), from_image)
    # AdaIN alone reads relu4_1 of either kind of code
    plain = np.asarray(stylizer(content, loaded), dtype=np.int16)
    assert np.abs(plain - np.asarray(stylizer(content, style), dtype=np.int16)).max() <= 2
    partial = load_file(str(saved))
    del partial["relu2_1.std"]
    save_file(partial, str(tmp_path / "partial.safetensors"), metadata={"format": "adain-style"})
    with pytest.raises(AdainError, match="all four taps or none"):
        StyleCode.load(tmp_path / "partial.safetensors")
    with pytest.raises(AdainError, match="std that is not positive"):
        StyleCode(code.mean, code.std, "bad", (*code.taps[:3], (code.taps[3][0], -code.taps[3][1])))


def test_the_steps_show_a_progress_bar_when_asked(stylizer, tmp_path, capsys):
    content, style = make_image(tmp_path / "c.png", (40, 32), seed=1), make_image(tmp_path / "s.png", seed=2)
    stylizer.with_options(polish=2)(content, style)
    assert "polish" not in capsys.readouterr().err
    stylizer.with_options(polish=2, progress=True)(content, style)
    shown = capsys.readouterr().err
    assert (
        "polish:" in shown and "/2 [" in shown
    )  # the bar counts the steps (redrawn at most 10 times a second)


@pytest.mark.parametrize("steps", [-1, 501, 2.5, True])
def test_a_step_count_outside_0_to_500_is_refused(steps):
    with pytest.raises(AdainError, match="polish must be a whole number of steps from 0 to 500"):
        StylizerOptions(polish=steps)


@pytest.mark.parametrize("weight", [0, -1.0, 1000.5, float("nan"), float("inf"), True, "10"])
def test_a_style_weight_outside_0_to_1000_is_refused(weight):
    with pytest.raises(AdainError, match="polish_style_weight must be above 0 and at most 1000"):
        StylizerOptions(polish=3, polish_style_weight=weight)


def test_the_flag_changes_the_image_and_is_checked(tmp_path, small_pair, decoder_file):
    content, style = small_pair
    plain, polished = tmp_path / "plain.png", tmp_path / "polished.png"
    small = ("--content-size", "64", "-q")
    assert main(stylize_argv(content, style, plain, decoder_file, *small)) == 0
    assert main(stylize_argv(content, style, polished, decoder_file, "--polish", "2", *small)) == 0
    a, b = (np.asarray(images.load_image(p), dtype=np.int16) for p in (plain, polished))
    assert a.shape == b.shape and np.abs(a - b).max() > 0
    weighted = tmp_path / "weighted.png"
    weight = ("--polish", "2", "--polish-style-weight", "1")
    assert main(stylize_argv(content, style, weighted, decoder_file, *weight, *small)) == 0
    assert not np.array_equal(b, np.asarray(images.load_image(weighted), dtype=np.int16))
    for flags in (
        ("--polish", "501"), ("--polish", "-1"), ("--polish", "two"), ("--polish-style-weight", "3"),
        ("--polish", "2", "--polish-style-weight", "0"), ("--polish", "2", "--polish-style-weight", "nan"),
    ):  # fmt: skip
        assert exit_status(stylize_argv(content, style, tmp_path / "bad.png", decoder_file, *flags)) == 2
    # over the memory budget: one line, no file
    argv = stylize_argv(
        content, style, tmp_path / "big.png", decoder_file, "--polish", "2", "--content-size", "4000"
    )
    assert exit_status(argv) == 1 and not (tmp_path / "big.png").exists()


def test_eval_polishes_the_adain_method_and_says_so(tmp_path, decoder_file):
    argv = one_pair_eval_argv(tmp_path, decoder_file)
    summaries = {}
    runs = {
        "plain": [],
        "polished": ["--polish", "4"],
        "weighted": ["--polish", "4", "--polish-style-weight", "1"],
    }
    for name, extra in runs.items():
        assert main([*argv, "--out", str(tmp_path / name), *extra]) == 0
        summaries[name] = json.loads((tmp_path / name / "summary.json").read_text())
    assert [(s["polish"], s["polish_style_weight"]) for s in summaries.values()] == [
        (0, defaults.POLISH_STYLE_WEIGHT), (4, defaults.POLISH_STYLE_WEIGHT), (4, 1)
    ]  # fmt: skip
    # the content weighed more: nearer the content than at the training's weight
    weighted = summaries["weighted"]["methods"]["adain"]
    assert weighted["content_loss"] < summaries["polished"]["methods"]["adain"]["content_loss"]
    plain, polished = (summaries[n]["methods"]["adain"] for n in ("plain", "polished"))
    score = {
        n: s["content_loss"] + defaults.POLISH_STYLE_WEIGHT * s["style_loss"]
        for n, s in (("plain", plain), ("polished", polished))
    }
    assert score["polished"] < score["plain"]
