"""scripts/style_channels.py predict: how much of each tap's style statistics relu4_1's foretell."""

import re
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "style_channels.py"


def test_predict_tells_known_statistics_from_unknowable_ones(tmp_path):
    generator = torch.Generator().manual_seed(0)
    styles, crops = 800, 4  # more crops than the 1,024 numbers relu4_1 gives
    mean = torch.rand(styles, crops, 960, generator=generator)
    std = torch.rand(styles, crops, 960, generator=generator)
    # relu1_1's means a linear function of relu4_1's (the last 512): knowable to AdaIN's decoder;
    # relu2_1's (64:192) stay independent noise: unknowable
    mixing = torch.randn(512, 64, generator=generator) / 512**0.5
    mean[..., :64] = mean[..., 448:] @ mixing
    cache = tmp_path / "style-test.safetensors"
    save_file({"mean": mean, "std": std}, str(cache))
    done = subprocess.run(
        [sys.executable, SCRIPT, "--style-cache", cache, "predict", "--ridge", "1", "--steps", "5"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ridge = next(line for line in done.stdout.splitlines() if line.strip().startswith("ridge 1:"))
    r2 = {tap: float(value) for tap, value in re.findall(r"(relu\d_1 (?:mean|std)) (-?[\d.]+)", ridge)}
    assert len(r2) == 8
    assert r2["relu1_1 mean"] > 0.95
    assert r2["relu2_1 mean"] < 0.1
    assert r2["relu4_1 mean"] > 0.95  # what the decoder is given is known to it


def test_predict_needs_a_style_cache():
    done = subprocess.run([sys.executable, SCRIPT, "predict"], capture_output=True, text=True)
    assert done.returncode == 2 and "predict needs --style-cache" in done.stderr
