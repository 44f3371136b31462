"""PSNR of the fast pipeline against the plain fp32 one on the canonical images (issue #6's fidelity
gate at full size; the test suite checks small sizes): every content with a spread of styles.

    python benchmarks/fidelity.py [--precision bf16] [--size 512] [--styles 5]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from results_file import add_out_flags, parse_args, write_results

from adain import Stylizer, images

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "images"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--precision", default="bf16", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--size", type=int, default=512, help="content short side")
    parser.add_argument("--styles", type=int, default=5, help="styles per content (spread over the set)")
    parser.add_argument("--images", type=Path, default=SHARED)
    add_out_flags(parser, "fidelity.json")
    args = parse_args(parser)
    fast = Stylizer.from_pretrained(device="cpu", precision=args.precision)
    plain = Stylizer.from_pretrained(device="cpu", fast=False)
    contents, styles = images.find_images(args.images / "content"), images.find_images(args.images / "style")
    rows = []
    for i, content in enumerate(contents):
        for k in range(args.styles):
            style = styles[(i + k * len(styles) // args.styles) % len(styles)]
            a, b = (
                np.asarray(s(content, style, content_size=args.size, style_size=args.size))
                for s in (fast, plain)
            )
            rows.append({"content": content.name, "style": style.name, "psnr_db": psnr(a, b)})
            print(f"{content.name:>20} {style.name:>36} {rows[-1]['psnr_db']:6.1f} dB", flush=True)
    values = [r["psnr_db"] for r in rows]
    print(f"{len(rows)} pairs at {args.size} px, {args.precision}: PSNR min {min(values):.1f} dB, "
          f"median {float(np.median(values)):.1f} dB")  # fmt: skip
    write_results(args.out, {"precision": args.precision, "size": args.size, "pairs": rows})


if __name__ == "__main__":
    main()
