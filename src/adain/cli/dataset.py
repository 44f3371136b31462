"""``adain dataset``: a whole tree of images stylized, mirrored, resumable (Stylized-ImageNet)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import defaults
from . import args as flags


def alpha_range(text: str) -> tuple[float, float]:
    """``0.7`` or ``0.5:1``: one alpha, or a range to draw each image's from."""
    low, _, high = text.partition(":")
    try:
        values = (flags.unit_float(low), flags.unit_float(high or low))
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"expected A or LOW:HIGH within 0..1 ({exc})") from None
    if values[0] > values[1]:
        raise argparse.ArgumentTypeError(f"the range {text!r} runs backwards")
    return values


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "dataset", help="stylize a whole dataset tree (resumable, in worker processes)"
    )
    add = parser.add_argument
    add("src", type=Path, help="the source tree (class folders and file names are mirrored)")
    add("--styles", type=Path, required=True, help="folder of style images (searched recursively)")
    add("-o", "--output", type=Path, required=True, help="the output tree, with manifest.csv")
    add("--per-content", type=flags.positive_int, default=1, help="styled copies of each image (default 1)")
    add("--alpha", type=alpha_range, default=(1.0, 1.0), metavar="A|LOW:HIGH",
        help="style strength, or a range each image's is drawn from (default 1)")  # fmt: skip
    add(
        "--content-size",
        type=flags.non_negative_int,
        default=0,
        help="short side of the outputs (default 0: keep)",
    )
    add("--style-size", type=flags.non_negative_int, default=defaults.STYLE_SIZE,
        help=f"style short side (default {defaults.STYLE_SIZE})")  # fmt: skip
    add("--seed", type=int, default=0, help="draws each image's styles and alpha (default 0)")
    add("--ext", choices=defaults.OUTPUT_EXTENSIONS, help="output format (default: each image's own)")
    add("--workers", type=flags.positive_int, default=1,
        help="worker processes (or Ray actors), one core each (default 1)")  # fmt: skip
    add("--engine", choices=("local", "ray"), default="local",
        help="local: processes on this machine (default); ray: Ray actors (pip install 'adain[ray]')")  # fmt: skip
    add("--ray-address", metavar="ADDRESS",
        help="join this Ray cluster (e.g. auto, or HEAD_IP:6379); default: start a local Ray for the run")  # fmt: skip
    add("--overwrite", action="store_true", help="start afresh in an output tree made with other settings")
    flags.add_feedback_flag(parser)
    flags.add_palette_flag(parser)
    flags.add_decoder_match_flag(parser)
    flags.add_polish_flag(parser)
    flags.add_max_memory_flag(parser)
    flags.add_weights_flags(parser)
    flags.add_quiet_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..dataset import DatasetConfig, DatasetRun

    weights = {"vgg": args.vgg and str(args.vgg), "decoder": args.decoder and str(args.decoder),
               "device": args.device, "fast": not args.plain, "precision": args.precision}  # fmt: skip
    # only the options asked for, so that runs from before the flags resume as they were
    chosen = {**flags.feedback_options(args), **flags.polish_options(args), "palette": args.palette,
              **flags.decoder_match_options(args)}  # fmt: skip
    if "decoder_match" not in chosen:
        # the decoder's own match, written into the config: a run begun with a decoder that painted
        # otherwise (the shipped one before session 49) is then refused on resuming, not mixed
        from .. import weights as decoder_files

        chosen.update(
            decoder_files.DecoderWeights.read(decoder_files.resolve_decoder(args.decoder)).match_options()
        )
    if "decoder_match_layers" in chosen:  # the config is written as JSON
        chosen["decoder_match_layers"] = list(chosen["decoder_match_layers"])
    if args.max_memory is not None:
        chosen["max_memory_mb"] = args.max_memory
    # an explicit --decoder-match 0 (or --no-decoder-match-covariance) is kept: it turns off a decoder's own
    kept = ("decoder_match", "decoder_match_covariance")
    weights.update({name: value for name, value in chosen.items() if value or name in kept})
    config = DatasetConfig(
        str(args.src), str(args.styles), str(args.output), args.per_content, args.alpha, args.content_size,
        args.style_size, args.seed, args.ext, weights,
    )  # fmt: skip
    if args.ray_address and args.engine != "ray":
        from ..errors import UsageError

        raise UsageError("--ray-address goes with --engine ray")
    run = DatasetRun(config, args.overwrite)
    counts = run.execute(
        args.workers, progress=not args.quiet, engine=args.engine, ray_address=args.ray_address
    )
    print(f"adain: {counts['written']} written, {counts['skipped']} done before, {counts['failed']} failed "
          f"(see {args.output / 'manifest.csv'})", file=sys.stderr)  # fmt: skip
    return 1 if counts["failed"] else 0
