"""``adain stylize``: every content x every style (or all styles blended or masked) to files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import defaults
from ..errors import AdainError
from . import args as flags


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("stylize", help="paint content images in the style of others")
    parser.add_argument("content", nargs="+", type=Path, help="content image files or directories")
    parser.add_argument("-s", "--style", nargs="+", type=Path, required=True,
                        help="style image files or directories (or saved .safetensors styles)")  # fmt: skip
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="output file (one result) or directory"
    )
    parser.add_argument("--ext", choices=defaults.OUTPUT_EXTENSIONS, default="jpg",
                        help="format of files written into an output directory (default: jpg)")  # fmt: skip
    for role, size in (("content", defaults.CONTENT_SIZE), ("style", defaults.STYLE_SIZE)):
        parser.add_argument(f"--{role}-size", type=flags.non_negative_int, default=size,
                            help=f"resize the {role}'s short side to this (0 keeps it; default {size})")  # fmt: skip
    parser.add_argument("--crop", action="store_true", help="centre-crop content and style to squares")
    parser.add_argument("--alpha", type=flags.unit_float, default=1.0,
                        help="style strength from 0 (content) to 1 (full style; default)")  # fmt: skip
    parser.add_argument("--style-weights", type=flags.style_weights, metavar="W1,W2,...",
                        help="blend all the styles into one with these weights")  # fmt: skip
    parser.add_argument("--preserve-color", action="store_true", help="keep the content's colours")
    flags.add_feedback_flag(parser)
    flags.add_palette_flag(parser)
    flags.add_decoder_match_flag(parser)
    flags.add_polish_flag(parser)
    parser.add_argument("--mask", type=Path,
                        help="mask image: white gets the first style, black the second (two styles)")  # fmt: skip
    flags.add_weights_flags(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--max-pixels", type=flags.positive_int, default=defaults.MAX_PIXELS,
                        help=f"largest image accepted, in pixels (default {defaults.MAX_PIXELS:,})")  # fmt: skip
    flags.add_max_memory_flag(parser)
    parser.add_argument("--tile", type=flags.tile, default=0, metavar="SIZE",
                        help="force tiles of SIZE pixels (64-16384; default 0: only when over --max-memory)")  # fmt: skip
    flags.add_quiet_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .. import batch, images

    contents, problems = batch.expand(args.content, "content")
    styles, style_problems = batch.expand(args.style, "style")
    problems += style_problems
    for message in problems:
        flags.report(message)
    if not contents or not styles:
        raise AdainError("nothing to stylize" if problems else "no content or style images given")
    flags.check_flag_controls(args.alpha, len(styles), args.style_weights, args.mask is not None)
    palette = flags.palette_option(args)
    if args.mask is not None and not args.mask.is_file():
        raise AdainError(f"{args.mask}: mask file not found")
    combined = args.style_weights is not None or args.mask is not None
    jobs, skipped = batch.plan(contents, styles, args.output, args.ext, combined, args.overwrite)
    for message in skipped:
        flags.report(message)
    errors = problems + skipped
    if not jobs:
        if len(errors) == 1:
            return 1  # its one reason said it all
        raise AdainError("nothing left to do")

    # only the decoder match asked for: the decoder brings its own otherwise
    stylizer = flags.stylizer_from(
        args, max_pixels=args.max_pixels, max_memory_mb=args.max_memory, tile=args.tile or None,
        progress=not args.quiet, **flags.feedback_options(args), **flags.polish_options(args), **palette,
        **flags.decoder_match_options(args),
    )  # fmt: skip
    results = batch.stylize_jobs(
        stylizer, jobs, args.style_size, args.crop, alpha=args.alpha, style_weights=args.style_weights,
        mask=args.mask, preserve_color=args.preserve_color, content_size=args.content_size,
    )  # fmt: skip
    bar = tqdm(results, total=len(jobs), desc="stylize", unit="img", disable=args.quiet or len(jobs) < 2,
               dynamic_ncols=True)  # fmt: skip
    done = 0
    for job, result in bar:
        try:
            if isinstance(result, AdainError):
                raise result
            alpha = result.getchannel("A") if result.mode == "RGBA" else None
            images.save_image(result.convert("RGB"), job.output, overwrite=args.overwrite, alpha=alpha)
            done += 1
        except AdainError as exc:
            errors.append(str(exc))
            bar.write(f"adain: error: {exc}", file=sys.stderr)
    single = len(jobs) == 1 and jobs[0].output == args.output
    if single and not done:
        return 1  # its one error said it all: a count of one failure under it is noise
    if errors or not args.quiet:
        where = args.output if single else f"{args.output}/"
        failed = f", {len(errors)} failed" if errors else ""
        print(f"adain: wrote {done} image{'s' if done != 1 else ''} to {where}{failed}", file=sys.stderr)
    return 1 if errors else 0
