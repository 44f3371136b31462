"""scripts/distil_polish.py: polish's images made once as targets, and a decoder pulled towards them."""

import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "distil_polish.py"


def run(*args: object) -> str:
    done = subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def terms(stdout: str, when: str) -> list[float]:
    line = next(line for line in stdout.splitlines() if line.startswith(when))
    return [float(v) for v in line.rsplit(": ", 1)[1].split()]


def test_targets_hold_polished_images_and_the_pixel_term_pulls_the_decoder_to_them(tmp_path):
    from adain import weights

    generator = torch.Generator().manual_seed(0)
    for folder, count in (("content", 2), ("style", 2)):
        (tmp_path / folder).mkdir()
        for i in range(count):
            pixels = torch.randint(0, 256, (40, 56, 3), dtype=torch.uint8, generator=generator)
            Image.fromarray(pixels.numpy()).save(tmp_path / folder / f"{i}.png")
    targets = tmp_path / "targets.pt"
    stdout = run("targets", "--contents", tmp_path / "content", "--styles", tmp_path / "style",
                 "--pairs", 2, "--size", 64, "--steps", 2, "--out", targets)  # fmt: skip
    assert "wrote" in stdout
    data = torch.load(targets)
    assert data["polished"].shape == (2, 3, 64, 64) and data["stats"].shape == (2, 2, 64 + 128 + 256 + 512)
    assert data["polished"].min() >= 0 and data["polished"].max() <= 1

    pixel_mse = {}
    for weight in (0, 1e7):
        out = tmp_path / f"w{weight:g}.safetensors"
        stdout = run(
            "train", targets, "--out", out, "--iters", 10, "--warmup", 0, "--lr", 1e-5, "--weight", weight
        )
        before, after = terms(stdout, "before"), terms(stdout, "after")
        assert len(before) == len(after) == 3
        pixel_mse[weight] = before[2], after[2]
    # the paper's loss alone moves the output away from polish's images; the pixel term brings it closer
    assert pixel_mse[0][1] > pixel_mse[0][0] > pixel_mse[1e7][1]
    decoder, _ = weights.load_decoder(tmp_path / "w1e+07.safetensors")
    shipped, _ = weights.load_decoder(None)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(decoder.state_dict().values(), shipped.state_dict().values(), strict=True)
    )
