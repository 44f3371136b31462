"""A tiny shape-recognition dataset for the style-augmentation example: circles, squares and
triangles in flat colours on flat backgrounds, 128 x 128 px, in class folders.

    python examples/shapes.py shapes/ [--train 500 --test 60 --seed 0]

writes shapes/train/{circle,square,triangle}/*.png and shapes/test/... . A classifier trained on
flat colours meets textures at test time when the test images are painted
(``adain dataset shapes/test --styles ... -o shapes/test-painted``; see
train_classifier.py): the shape is the label, the
texture is not (Geirhos et al., ICLR 2019, in miniature).
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")
SIZE = 128


def colour(rng: random.Random) -> tuple[int, int, int]:
    return tuple(rng.randrange(256) for _ in range(3))  # type: ignore[return-value]


def distinct_colours(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A background and a shape colour far enough apart to see the shape."""
    while True:
        back, fore = colour(rng), colour(rng)
        if sum(abs(a - b) for a, b in zip(back, fore, strict=True)) > 180:
            return back, fore


def shape(kind: str, rng: random.Random) -> Image.Image:
    back, fore = distinct_colours(rng)
    img = Image.new("RGB", (SIZE, SIZE), back)
    radius = rng.uniform(24, 48)
    cx, cy = rng.uniform(radius + 4, SIZE - radius - 4), rng.uniform(radius + 4, SIZE - radius - 4)
    draw = ImageDraw.Draw(img)
    if kind == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fore)
    else:
        corners = 4 if kind == "square" else 3
        turn = rng.uniform(0, 2 * math.pi)
        points = [(cx + radius * math.cos(turn + 2 * math.pi * k / corners),
                   cy + radius * math.sin(turn + 2 * math.pi * k / corners)) for k in range(corners)]  # fmt: skip
        draw.polygon(points, fill=fore)
    return img


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=500, help="images per class in train/ (default 500)")
    parser.add_argument("--test", type=int, default=60, help="images per class in test/ (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    for split, count in (("train", args.train), ("test", args.test)):
        for kind in CLASSES:
            folder = args.out / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                shape(kind, rng).save(folder / f"{kind}_{i:04d}.png")
    print(f"wrote {len(CLASSES) * (args.train + args.test)} images under {args.out}")


if __name__ == "__main__":
    main()
