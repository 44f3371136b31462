"""What ``--palette`` costs: one pass against one pass with its colours moved a share of the way to
the style's (``toward_palette``: the output's RGB mean and covariance, a 3x3 map, a blend), timed
in turns in one run with a style encoded once, as a batch or a server does. What it gains in style
loss is measured by ``adain eval --palette`` on the canonical pairs (README, "Palette").

    python benchmarks/palette.py [--sizes 512,1024,2048] [--share 0.25] [--runs 3]
"""

from __future__ import annotations

import torch
from inference import against_one_pass, timing_parser, timing_setup
from results_file import write_results


def main() -> None:
    parser = timing_parser(__doc__)
    parser.add_argument("--share", type=float, default=0.25, help="the palette share (default 0.25)")
    args, once, precision = timing_setup(parser, "512,1024,2048", 3, "palette.json")
    variants = [(f"palette {args.share:g}", once.with_options(palette=args.share))]
    rows = against_one_pass(once, variants, [int(s) for s in args.sizes.split(",")], args.runs)
    write_results(
        args.out,
        {"precision": precision, "threads": torch.get_num_threads(), "share": args.share, "rows": rows},
    )


if __name__ == "__main__":
    main()
