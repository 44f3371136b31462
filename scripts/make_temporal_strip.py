"""The README's plain-against-temporal strip (docs/gallery/temporal_strip.jpg): consecutive frames
of a clip at its fastest motion; rows: the input, the plain per-frame result, the ``--temporal``
result, and for each result its change that the motion does not explain (|frame t - frame t-1
carried along the input's Farneback flow|, x4, black where occluded): what flickers.

    python scripts/make_temporal_strip.py [--video ../shared/images/videos/sintel_gif_clip.mp4] [--frames 4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from adain import Stylizer, defaults
from adain.temporal import FlowBlend, reference_flows, warp
from adain.video import FramePainter

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "images"
LEAD = 8  # frames blended before the ones shown, so the temporal result is in its steady state


def fastest(frames: list[np.ndarray], count: int) -> int:
    """The first of ``count`` shown frames, where the input changes most (after LEAD frames)."""
    change = [np.abs(b.astype(float) - a).mean() for a, b in zip(frames[:-1], frames[1:], strict=True)]
    starts = range(LEAD, len(frames) - count + 1)
    return max(starts, key=lambda s: sum(change[s - 1 : s + count - 1]))


def unexplained(results: list[np.ndarray], flows, masks) -> list[np.ndarray]:
    maps = []
    for t in range(1, len(results)):
        carried = warp(results[t - 1].astype(np.float32), flows[t - 1])
        diff = np.abs(results[t].astype(np.float32) - carried) * 4 * masks[t - 1][..., None]
        maps.append(np.clip(diff, 0, 255).astype(np.uint8))
    return maps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", type=Path, default=SHARED / "videos" / "sintel_gif_clip.mp4")
    parser.add_argument("--style", type=Path, default=SHARED / "style" / "woman_with_hat_matisse.jpg")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--strength", type=float, default=defaults.TEMPORAL_STRENGTH)
    parser.add_argument("--decoder", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery" / "temporal_strip.jpg")
    args = parser.parse_args()
    with av.open(str(args.video)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    first = fastest(frames, args.frames)
    window = frames[first - LEAD : first + args.frames]
    stylizer = Stylizer.from_pretrained(decoder=args.decoder)
    plain = FramePainter(stylizer, [args.style], style_size=512).per_frame(window)
    blend = FlowBlend(strength=args.strength)
    steady = [blend(f, r) for f, r in zip(window, plain, strict=True)]
    plain, steady = ([np.clip(r, 0, 255).round().astype(np.uint8) for r in rs] for rs in (plain, steady))
    flows, masks = reference_flows(window)
    shown = slice(LEAD, LEAD + args.frames)
    rows = {
        "input": window[shown],
        "plain": plain[shown],
        f"--temporal {args.strength:g}": steady[shown],
        "plain: unexplained change x4": unexplained(plain, flows, masks)[LEAD - 1 :],
        "temporal: unexplained change x4": unexplained(steady, flows, masks)[LEAD - 1 :],
    }
    h, w = window[0].shape[:2]
    label = 18
    strip = Image.new("RGB", (w * args.frames, (h + label) * len(rows)), "white")
    draw = ImageDraw.Draw(strip)
    for r, (name, row) in enumerate(rows.items()):
        y = r * (h + label)
        draw.text(
            (4, y + 3),
            f"{name} (frames {first}-{first + args.frames - 1} of {args.video.name})",
            fill="black",
        )
        for i, image in enumerate(row):
            strip.paste(Image.fromarray(image), (i * w, y + label))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    strip.save(args.out, quality=88, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
