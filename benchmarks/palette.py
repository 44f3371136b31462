"""What ``--palette`` costs: one pass against one pass with its colours moved a share of the way to
the style's (``toward_palette``: the output's RGB mean and covariance, a 3x3 map, a blend), timed
in turns in one run with a style encoded once, as a batch or a server does. What it gains in style
loss is measured by ``adain eval --palette`` on the canonical pairs (README, "Palette").

    python benchmarks/palette.py [--sizes 512,1024,2048] [--share 0.25] [--runs 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from inference import smooth_image, timed
from results_file import add_out_flags, parse_args, write_results

from adain import Stylizer
from adain.devices import dtype_name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="512,1024,2048", help="content sizes, square")
    parser.add_argument("--share", type=float, default=0.25, help="the palette share (default 0.25)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--decoder", type=Path)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    add_out_flags(parser, "palette.json")
    args = parse_args(parser)
    once = Stylizer.from_pretrained(decoder=args.decoder, device="cpu", precision=args.precision)
    recoloured = once.with_options(palette=args.share)
    precision = dtype_name(once.dtype or torch.float32)
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, {precision}")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        g = torch.Generator().manual_seed(size)
        content = smooth_image(size, g)
        code = once.encode_style(torch.rand(3, 256, 256, generator=g))
        stylizers = [("one pass", once), (f"palette {args.share:g}", recoloured)]
        times, _ = timed(
            [lambda s=s, c=content, k=code: s.stylize_tensor(c, [k]) for _, s in stylizers], args.runs
        )
        for (name, _), seconds in zip(stylizers, times, strict=True):
            rows.append(
                {"size": size, "mode": name, "seconds": seconds, "against_one_pass": seconds / times[0]}
            )
            print(f"{size:>6} {name:<12} {seconds:>8.2f}s {seconds / times[0]:>6.2f}x", flush=True)
    write_results(
        args.out,
        {"precision": precision, "threads": torch.get_num_threads(), "share": args.share, "rows": rows},
    )


if __name__ == "__main__":
    main()
