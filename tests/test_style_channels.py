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


def test_clamp_counts_the_pixels_outside_and_the_clamps_cost(tmp_path):
    from PIL import Image

    from adain import weights
    from adain.nets import Decoder

    for folder, colour in (("content", (200, 40, 40)), ("style", (20, 90, 220))):
        (tmp_path / folder).mkdir()
        pixels = torch.randint(
            0, 256, (48, 48, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
        )
        Image.fromarray(((pixels.int() + torch.tensor(colour)) // 2).byte().numpy()).save(
            tmp_path / folder / "a.png"
        )
    shipped = weights.DecoderWeights.read(Path(weights.__file__).parent / "decoder.safetensors")
    decoder = Decoder()
    decoder.load_state_dict(weights.load_decoder_state(shipped.source))
    with torch.no_grad():
        decoder[-1].bias += 5  # every pixel above 1: the saved image is white
    bright = tmp_path / "bright.safetensors"
    weights.export_decoder(decoder, bright, dict(shipped.metadata))
    done = subprocess.run(
        [sys.executable, SCRIPT, "--size", "64", "clamp", tmp_path / "content", tmp_path / "style", bright],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "100.0% of the pixels outside [0, 1]" in done.stdout
    raw, clamped = (
        float(re.search(rf"{name}: ([\d.]+)", done.stdout).group(1)) for name in ("raw", "clamped")
    )
    assert raw != clamped
