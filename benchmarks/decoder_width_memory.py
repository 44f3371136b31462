"""Peak memory of stylizing one image with the shipped decoder widened to each width, each width in
a fresh process (the peak resident size only grows): what ``tiling.auto_tile`` scales by the width.

    python benchmarks/decoder_width_memory.py [--widths 1,1.5,2] [--size 1024]

Printed per width: the rise of the peak resident size over stylizing, after the style is encoded
(fp32, no tiles), in MB and bytes per pixel.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys


def measure(width: float, size: int) -> float:
    """MB the peak resident size rises by while one ``size``² image is stylized."""
    import torch
    from PIL import Image

    from adain import weights
    from adain.nets import widen_decoder
    from adain.stylize import Stylizer

    narrow, _ = weights.load_decoder()
    encoder, _ = weights.load_encoder()
    stylizer = Stylizer(encoder, widen_decoder(narrow, width), "cpu", precision="fp32")
    stylizer = stylizer.with_options(max_memory_mb=10**6)  # no tiles: the whole image's working set
    style = stylizer.encode_style(Image.fromarray((torch.rand(size, size, 3) * 255).byte().numpy()))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stylizer.stylize_tensor(torch.rand(1, 3, size, size), [style])
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--widths", default="1,1.5,2")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)  # the child process's width
    args = parser.parse_args()
    if args.one is not None:
        print(measure(args.one, args.size))
        return
    print("| width | peak rise MB | bytes per pixel |\n|---|---:|---:|")
    for width in map(float, args.widths.split(",")):
        child = [sys.executable, __file__, "--one", str(width), "--size", str(args.size)]
        mb = float(subprocess.run(child, capture_output=True, text=True, check=True).stdout.split()[-1])
        print(f"| {width:g} | {mb:,.0f} | {mb * 2**20 / args.size**2:,.0f} |")


if __name__ == "__main__":
    main()
