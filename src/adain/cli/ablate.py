"""``adain ablate``: the paper's ablation variants, trained with one budget and evaluated alike."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import defaults
from . import args as flags
from .evaluate import images_in


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ablate", help="train and evaluate the paper's ablation variants")
    flags.add_training_data_flags(parser)
    parser.add_argument("--eval-content-dir", type=Path, required=True)
    parser.add_argument("--eval-style-dir", type=Path, required=True)
    parser.add_argument(
        "--out-dir", type=Path, required=True, help="one run per variant, plus the table and grid"
    )
    parser.add_argument("--variant", action="append", choices=list(defaults.ABLATION_VARIANTS),
                        help="repeatable; default: all")  # fmt: skip
    parser.add_argument(
        "--max-iter", type=flags.positive_int, default=2000, help="the budget of every variant"
    )
    parser.add_argument(
        "--size", type=flags.positive_int, default=defaults.EVAL_SIZE, help="evaluation image size"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..ablate import ablate, markdown_table
    from ..train import TrainConfig

    contents = images_in(args.eval_content_dir, "content")
    styles = images_in(args.eval_style_dir, "style")
    base = TrainConfig(
        content_dir=args.content_dir, style_dir=args.style_dir, out_dir=str(args.out_dir), load_size=args.load_size,
        crop_size=args.crop_size, batch_size=args.batch_size, max_iter=args.max_iter, workers=args.workers,
        seed=args.seed, vgg=args.vgg, device=args.device, save_every=max(1, args.max_iter // 10),
    )  # fmt: skip
    table = ablate(base, contents, styles, args.out_dir, args.variant, args.size, not args.quiet)
    print(markdown_table(table), end="")
    return 0
