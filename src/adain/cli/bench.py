"""``adain bench``: the paper's speed table on this machine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import UsageError
from . import args as flags


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench", help="time per image, excluding and including style encoding (Table 1)"
    )
    parser.add_argument(
        "--sizes", type=flags.sizes, default=[256, 512], metavar="N,N,...", help="default 256,512"
    )
    parser.add_argument("--runs", type=flags.positive_int, default=5, help="timed runs per case (default 5)")
    parser.add_argument("--warmup", type=flags.non_negative_int, default=1)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    flags.add_weights_flags(parser)
    flags.add_decoder_match_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .. import files
    from ..bench import bench

    if args.out and args.out.exists() and not args.overwrite:  # before minutes of measuring, not after
        raise UsageError(f"{args.out} exists: pass --overwrite to replace it")
    result = bench(
        flags.stylizer_from(args, **flags.decoder_match_options(args)), args.sizes, args.runs, args.warmup
    )
    match = result["decoder_match"]
    pipeline = (
        f"decoder match {match:g} at ReLUs {','.join(map(str, result['decoder_match_layers']))}"
        + (" (covariance)" if result["decoder_match_covariance"] else "")
        if match
        else "one pass"
    )
    print(f"{result['device']}, {result['dtype']}, torch {result['torch']}, {pipeline}")
    print(f"{'size':>6}  {'excluding style (ms)':>24}  {'including style (ms)':>24}")
    for row in result["results"]:
        cells = [row[k] for k in ("excluding_style", "including_style")]
        text = [f"{c['median_ms']:9.1f} [{c['min_ms']:.1f}-{c['max_ms']:.1f}]" for c in cells]
        print(f"{row['size']:>6}  {text[0]:>24}  {text[1]:>24}")
    if args.out:
        files.write_text(args.out, json.dumps(result, indent=2) + "\n")
    return 0
