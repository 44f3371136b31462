"""Fingerprints of the inference pipeline's output, for ``tests/test_pipeline_identity.py``.

Each case stylizes the canonical sample (cornell x woman_with_hat_matisse, ../shared/images) with
the real encoder and a seeded decoder (so the reference does not change when a new decoder ships)
and records the SHA-256 of the 8-bit result. Run it at a commit whose pipeline is the reference:

    python scripts/make_pipeline_reference.py --out tests/data/pipeline_reference.json

A restructuring of the code must leave every fingerprint as it was (fp32 on the same machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "images"
CONTENT = SHARED / "content" / "cornell.jpg"
STYLE = SHARED / "style" / "woman_with_hat_matisse.jpg"
STYLE_2 = SHARED / "style" / "sketch.png"
MASK = SHARED / "mask" / "mask.png"


def seeded_decoder():
    """A decoder with seeded He-normal weights whose output spans [0, 1]: a stand-in that exercises
    every layer as a trained one would, fixed whatever decoder the package ships."""
    from adain.nets import Decoder

    decoder = Decoder()
    generator = torch.Generator().manual_seed(20261201)
    convs = [m for m in decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            fan_in = conv.in_channels * 9
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2 / fan_in) ** 0.5)
            conv.bias.zero_()
        convs[-1].weight.mul_(0.05)
        convs[-1].bias.fill_(0.5)
    return decoder


def stylizer(precision: str, fast: bool = True):
    from adain import Stylizer
    from adain.nets import Encoder
    from adain.weights import build_encoder_state

    encoder = Encoder()
    encoder.load_state_dict(build_encoder_state())
    return Stylizer(encoder, seeded_decoder(), "cpu", fast=fast, precision=precision)


def fingerprint(img: Image.Image) -> str:
    return hashlib.sha256(img.tobytes()).hexdigest()


def cases(precision: str) -> dict[str, Image.Image]:
    """Every control of the pipeline at 256 px, one image each."""
    from adain import images

    fast = stylizer(precision)
    sized = {"content_size": 256, "style_size": 256}
    out = {
        "plain": stylizer("fp32", fast=False)(CONTENT, STYLE, **sized),
        "fast": fast(CONTENT, STYLE, **sized),
        "alpha": fast(CONTENT, STYLE, alpha=0.6, **sized),
        "interpolation": fast(CONTENT, [STYLE, STYLE_2], style_weights=[2, 1], **sized),
        "mask": fast(CONTENT, [STYLE, STYLE_2], mask=MASK, **sized),
        "preserve_color": fast(CONTENT, STYLE, preserve_color=True, **sized),
        "crop": fast(CONTENT, STYLE, crop=True, **sized),
    }
    tiled = fast.with_options(tile=64)
    out["tiled"] = tiled(CONTENT, STYLE, alpha=0.8, **sized)
    out["tiled_mask"] = tiled(CONTENT, [STYLE, STYLE_2], mask=MASK, **sized)
    code = fast.encode_style(STYLE, 256)
    frame = images.to_tensor(images.resize_short_side(images.load_image(CONTENT), 128))
    batch = torch.cat([frame, frame.flip(-1)])
    ema = []

    def smooth(stats):  # the video path's hook: an EMA of the content statistics
        if ema:
            stats = [
                (0.9 * a[0] + 0.1 * b[0], 0.9 * a[1] + 0.1 * b[1])
                for a, b in zip(ema[-1], stats, strict=True)
            ]
        ema.append(stats)
        return stats

    frames = fast.stylize_tensor(batch, [code], alpha=0.9, smooth=smooth)
    out["frames_0"], out["frames_1"] = images.to_pil(frames[0]), images.to_pil(frames[1])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    result = {
        "commit": commit.strip(),
        "precision": args.precision,
        "fingerprints": {name: fingerprint(img) for name, img in cases(args.precision).items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
