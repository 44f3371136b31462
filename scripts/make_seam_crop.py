"""The committed seam example: a crop around a tile corner of a tiled stylization, beside the same
crop of the whole-image result and their difference (x10), with the PSNR of the full images.

    python scripts/make_seam_crop.py [--size 1024] [--tile 256] [--out docs/gallery/seams.jpg]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from adain import Stylizer, images

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--content", type=Path, default=SHARED / "content" / "golden_gate.jpg")
    parser.add_argument("--style", type=Path, default=SHARED / "style" / "la_muse.jpg")
    parser.add_argument("--size", type=int, default=1024, help="content short side")
    parser.add_argument("--tile", type=int, default=256, help="tile core size")
    parser.add_argument("--crop", type=int, default=192, help="side of the crop around a tile corner")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery" / "seams.jpg")
    args = parser.parse_args()

    stylizer = Stylizer.from_pretrained(device="cpu", max_memory_mb=1e9)  # whole image in one piece
    whole = np.asarray(stylizer(args.content, args.style, content_size=args.size, style_size=512))
    tiled = stylizer.with_options(tile=args.tile)(
        args.content, args.style, content_size=args.size, style_size=512
    )
    tiled = np.asarray(tiled)

    # the crop is centred on the corner where four tile cores meet
    corner = args.tile
    half = args.crop // 2
    box = (slice(corner - half, corner + half), slice(corner - half, corner + half))
    diff = np.clip(np.abs(whole[box].astype(int) - tiled[box]) * 10, 0, 255).astype(np.uint8)
    strip = np.concatenate([whole[box], tiled[box], diff], axis=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    images.save_image(Image.fromarray(strip).resize((strip.shape[1] * 2, strip.shape[0] * 2), Image.NEAREST),
                      args.out, overwrite=True)  # fmt: skip
    print(f"{whole.shape[1]}x{whole.shape[0]}, tiles of {args.tile}: PSNR tiled vs whole "
          f"{psnr(whole, tiled):.1f} dB; crop {psnr(whole[box], tiled[box]):.1f} dB; "
          f"max abs difference {np.abs(whole.astype(int) - tiled).max()}; wrote {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
