"""benchmarks/decoder_matching.py: AdaIN on the decoder's own activations, measured like ``adain eval``."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

from adain.cli import main as adain_main

from .conftest import SHARED_VGG, one_pair_eval_argv

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "decoder_matching.py"


def load_script():
    sys.path.insert(0, str(BENCHMARKS))  # its sibling results_file, as when run from the command line
    try:
        spec = importlib.util.spec_from_file_location("decoder_matching", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclass looks its module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


@torch.no_grad()
def test_matching_a_pass_to_its_own_statistics_changes_nothing_and_other_statistics_do(stylizer):
    script = load_script()
    decoder = stylizer.decoder.float()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(1, 512, 6, 5, generator=g), 3 * torch.rand(1, 512, 6, 5, generator=g)
    plain, own = script.decode(decoder, x)
    assert torch.equal(plain, decoder(x)) and len(own) == 8
    every = dict(enumerate(own))
    assert torch.allclose(script.decode(decoder, x, every, 1.0)[0], plain, atol=1e-4)
    _, other = script.decode(decoder, y)
    assert torch.equal(script.decode(decoder, x, {0: other[0]}, 0.0)[0], plain)
    moved, seen = script.decode(decoder, x, {0: other[0]}, 1.0)
    assert not torch.allclose(moved, plain, atol=1e-3)
    # the next layer's input was matched: its own statistics are no longer the plain pass's
    assert not torch.allclose(seen[1][0], own[1][0], atol=1e-4)


def test_the_plain_config_measures_what_adain_eval_measures(tmp_path, decoder_file):
    argv = one_pair_eval_argv(tmp_path, decoder_file)
    # fp32 as the script runs (auto would pick the faster arithmetic, bf16 on some CPUs)
    assert adain_main([*argv, "--precision", "fp32", "--out", str(tmp_path / "eval")]) == 0
    measured = json.loads((tmp_path / "eval" / "summary.json").read_text())["methods"]["adain"]
    vgg = ["--vgg", str(SHARED_VGG)] if SHARED_VGG.is_file() else []
    out = tmp_path / "matching.json"
    done = subprocess.run(
        [sys.executable, SCRIPT, "--content-dir", tmp_path / "c", "--style-dir", tmp_path / "s", "--size", "32",
         "--decoder", decoder_file, *vgg, "--config", "plain", "--config", "0,6:1", "--out", out],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    means = json.loads(out.read_text())["means"]
    assert abs(means["plain"]["content"] - measured["content_loss"]) < 1e-4 * measured["content_loss"]
    assert abs(means["plain"]["style"] - measured["style_loss"]) < 1e-4 * measured["style_loss"]
    assert means["0,6:1"] != means["plain"]
    again = subprocess.run(
        [sys.executable, SCRIPT, "--config", "plain", "--out", out], capture_output=True, text=True
    )
    assert again.returncode == 2 and "exists" in again.stderr


@torch.no_grad()
def test_a_layer_given_its_own_share_moves_by_it(stylizer):
    script = load_script()
    config = script.parse_config("0=0.25,6:0.5")
    assert config.layers == (0, 6) and config.shares() == {0: 0.25, 6: 0.5}
    decoder = stylizer.decoder.float()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(1, 512, 6, 5, generator=g), 3 * torch.rand(1, 512, 6, 5, generator=g)
    _, other = script.decode(decoder, y)
    targets = {0: other[0], 6: other[6]}
    mixed = script.decode(decoder, x, targets, config.shares())[0]
    assert torch.equal(mixed, script.decode(decoder, x, targets, {0: 0.25, 6: 0.5})[0])
    assert not torch.allclose(mixed, script.decode(decoder, x, targets, 0.5)[0], atol=1e-4)
    assert torch.equal(
        script.decode(decoder, x, {0: other[0]}, {0: 0.25})[0],
        script.decode(decoder, x, {0: other[0]}, 0.25)[0],
    )
