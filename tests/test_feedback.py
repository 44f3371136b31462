"""The ``feedback`` option: a second pass from targets moved by a share of what the first missed."""

import json

import numpy as np
import pytest
import torch

from adain import images
from adain.cli import main
from adain.errors import AdainError
from adain.nets import mean_std
from adain.stylize import Stylizer, StylizerOptions, feedback_targets

from .conftest import (
    CONTENT,
    STYLE,
    exit_status,
    make_image,
    needs_shared,
    one_pair_eval_argv,
    stylize_argv,
)
from .test_tiling import psnr


def test_targets_move_by_the_share_of_the_miss():
    target = (torch.tensor([1.0, 2.0, 0.5]), torch.tensor([1.0, 4.0, 1.0]))
    made = (torch.tensor([0.8, 2.5, 0.5]), torch.tensor([0.5, 4.0, 100.0]))
    mean, std = feedback_targets(target, made, 0.5)
    assert torch.allclose(mean, torch.tensor([1.1, 1.75, 0.5]))
    # the std ratio 2 to the power 1/2; 1; and 1/100 held at 1/2 before the power
    assert torch.allclose(std, torch.tensor([2**0.5, 4.0, 0.5**0.5]))
    assert feedback_targets(target, None, 0.5) is target  # an empty mask region keeps its target
    same = feedback_targets(target, made, 0.0)
    assert torch.equal(same[0], target[0]) and torch.equal(same[1], target[1])


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_a_share_outside_0_to_1_is_refused(share):
    with pytest.raises(AdainError, match="feedback must be from 0 to 1"):
        StylizerOptions(feedback=share)


# a share outside 0..1; a preview without feedback; a preview of nothing
FLAGS = [("--feedback", "2"), ("--feedback-preview", "0.5"), ("--feedback", "1", "--feedback-preview", "0")]


@pytest.mark.parametrize("flags", FLAGS)
def test_the_flags_are_checked_like_every_other(tmp_path, small_pair, decoder_file, flags):
    content, style = small_pair
    argv = stylize_argv(content, style, tmp_path / "out.png", decoder_file, *flags)
    assert exit_status(argv) == 2 and not (tmp_path / "out.png").exists()


def relu4_1_miss(stylizer: Stylizer, output, code) -> float:
    """How far the output's relu4_1 statistics are from the style's."""
    with torch.inference_mode():
        mean, std = mean_std(stylizer.encode_fp32(images.to_tensor(output)))
    return ((mean - code.mean).pow(2).mean() + (std - code.std).pow(2).mean()).item()


@needs_shared
def test_feedback_brings_the_shipped_decoders_output_nearer_its_style():
    stylizer = Stylizer.from_pretrained(device="cpu", precision="fp32")  # the shipped pair
    code = stylizer.encode_style(STYLE, 256)
    misses = [
        relu4_1_miss(stylizer, stylizer.with_options(feedback=share)(CONTENT, code, content_size=256), code)
        for share in (0.0, 0.5, 1.0)
    ]
    assert misses[0] > misses[1] > misses[2]


def test_feedback_in_tiles_and_mask_regions_matches_the_whole_image(stylizer, tmp_path):
    content = make_image(tmp_path / "c.png", (200, 168), seed=7)
    style, other = (make_image(tmp_path / f"{n}.png", (64, 64), seed=s) for n, s in (("s", 8), ("o", 10)))
    mask = make_image(tmp_path / "m.png", (200, 168), seed=9, mode="L")
    fed = stylizer.with_options(feedback=1.0)
    for args in ((content, style), (content, [style, other])):
        extra = {"mask": mask} if isinstance(args[1], list) else {}
        whole = np.asarray(fed(*args, **extra))
        assert psnr(np.asarray(fed.with_options(tile=64)(*args, **extra)), whole) >= 35
        assert psnr(np.asarray(stylizer(*args, **extra)), whole) < 35  # and it did change the image


def test_eval_takes_alpha_and_feedback_and_says_so(tmp_path, decoder_file):
    argv = one_pair_eval_argv(tmp_path, decoder_file)
    summaries = {}
    runs = (("plain", []), ("weak", ["--alpha", "0.5"]), ("fed", ["--feedback", "1"]),
            ("previewed", ["--feedback", "1", "--feedback-preview", "0.5"]))  # fmt: skip
    for name, extra in runs:
        assert main([*argv, "--out", str(tmp_path / name), *extra]) == 0
        summaries[name] = json.loads((tmp_path / name / "summary.json").read_text())
    assert (summaries["weak"]["alpha"], summaries["fed"]["feedback"]) == (0.5, 1.0)
    assert (summaries["plain"]["alpha"], summaries["plain"]["feedback"]) == (1.0, 0.0)
    assert (summaries["previewed"]["feedback_preview"], summaries["fed"]["feedback_preview"]) == (0.5, None)
    losses = {name: s["methods"]["adain"]["style_loss"] for name, s in summaries.items()}
    assert len(set(losses.values())) == 4


@pytest.mark.parametrize("scale", [0.0, 1.5, float("nan")])
def test_a_preview_scale_outside_0_to_1_is_refused(scale):
    with pytest.raises(AdainError, match="feedback_preview must be above 0 and at most 1"):
        StylizerOptions(feedback=0.5, feedback_preview=scale)


@needs_shared
def test_a_smaller_first_pass_keeps_part_of_the_gain():
    stylizer = Stylizer.from_pretrained(device="cpu", precision="fp32")  # the shipped pair
    code = stylizer.encode_style(STYLE, 256)
    outputs = {
        "once": stylizer(CONTENT, code, content_size=256),
        "whole": stylizer.with_options(feedback=0.5)(CONTENT, code, content_size=256),
        "preview": stylizer.with_options(feedback=0.5, feedback_preview=0.5)(CONTENT, code, content_size=256),
        # a preview at scale 1 is the whole first pass
        "large": stylizer.with_options(feedback=0.5, feedback_preview=1.0)(CONTENT, code, content_size=256),
    }
    assert np.array_equal(np.asarray(outputs["large"]), np.asarray(outputs["whole"]))
    misses = {name: relu4_1_miss(stylizer, out, code) for name, out in outputs.items()}
    assert misses["once"] > misses["preview"] > misses["whole"]


def test_a_preview_in_tiles_and_mask_regions_matches_the_whole_image(stylizer, tmp_path):
    content = make_image(tmp_path / "c.png", (200, 168), seed=7)
    style, other = (make_image(tmp_path / f"{n}.png", (64, 64), seed=s) for n, s in (("s", 8), ("o", 10)))
    mask = make_image(tmp_path / "m.png", (200, 168), seed=9, mode="L")
    fed = stylizer.with_options(feedback=1.0)
    previewed = fed.with_options(feedback_preview=0.5)
    for args in ((content, style), (content, [style, other])):
        extra = {"mask": mask} if isinstance(args[1], list) else {}
        whole = np.asarray(previewed(*args, **extra))
        assert psnr(np.asarray(previewed.with_options(tile=64)(*args, **extra)), whole) >= 35
        assert not np.array_equal(np.asarray(fed(*args, **extra)), whole)  # the preview did change it
