"""``adain eval``: the paper's content and style losses over folders of contents and styles."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import defaults
from ..errors import AdainError, UsageError
from . import args as flags


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("eval", help="content and style loss of stylized images (paper's Fig. 3)")
    parser.add_argument("--content-dir", type=Path, required=True)
    parser.add_argument("--style-dir", type=Path, required=True)
    parser.add_argument(
        "--out", type=Path, required=True, help="directory for pairs.csv, summary.json, losses.png"
    )
    parser.add_argument("--size", type=flags.positive_int, default=defaults.EVAL_SIZE,
                        help="images are centre-cropped squares of this size")  # fmt: skip
    parser.add_argument("--method", action="append", choices=["adain", "gatys", "content", "style"],
                        help="repeatable; default: adain, content and style")  # fmt: skip
    parser.add_argument("--gatys-iters", type=flags.positive_int, default=200,
                        help="loss evaluations per pair for the gatys method (default 200)")  # fmt: skip
    parser.add_argument("--alpha", type=flags.unit_float, default=1.0,
                        help="the adain method's style strength from 0 to 1 (default 1)")  # fmt: skip
    flags.add_feedback_flag(parser)
    flags.add_palette_flag(parser)
    flags.add_decoder_match_flag(parser)
    flags.add_polish_flag(parser)
    flags.add_weights_flags(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier report in --out")
    flags.add_quiet_flag(parser)
    parser.set_defaults(run=run)


def images_in(folder: Path, role: str) -> list[Path]:
    """The images of an evaluation folder, or a one-line error."""
    from .. import images

    if not folder.is_dir():
        raise AdainError(f"{folder}: not a directory")
    found = images.find_images(folder)
    if not found:
        raise AdainError(f"{folder}: no {role} images in this directory")
    return found


def run(args: argparse.Namespace) -> int:
    from ..evaluate import REPORT_FILES, evaluate, write_report

    contents, styles = images_in(args.content_dir, "content"), images_in(args.style_dir, "style")
    earlier = [name for name in REPORT_FILES if (args.out / name).exists()]
    if earlier and not args.overwrite:
        raise UsageError(
            f"{args.out} holds an earlier evaluation ({', '.join(earlier)}): pass --overwrite to replace it"
        )
    stylizer = flags.stylizer_from(
        args, **flags.feedback_options(args), **flags.polish_options(args), palette=args.palette,
        **flags.decoder_match_options(args),
    )  # fmt: skip
    methods = args.method or ["adain", "content", "style"]
    results = evaluate(
        stylizer, contents, styles, methods, args.size, not args.quiet, args.gatys_iters, alpha=args.alpha
    )
    meta = {
        "size": args.size,
        "decoder": stylizer.decoder_weights.source,
        "encoder": stylizer.encoder_weights.source,
        "alpha": args.alpha,
        "feedback": args.feedback,
        "feedback_preview": args.feedback_preview,
        "palette": args.palette,
        "decoder_match": stylizer.options.decoder_match,
        "decoder_match_layers": (
            list(stylizer.options.decoder_match_layers) if stylizer.options.decoder_match else None
        ),
        "decoder_match_covariance": bool(
            stylizer.options.decoder_match and stylizer.options.decoder_match_covariance
        ),
        "polish": args.polish,
        "polish_style_weight": stylizer.options.polish_style_weight,
    }
    summary = write_report(results, args.out, meta)
    print(f"{'method':<10}{'content loss':>16}{'style loss':>16}{'pairs':>7}{'seconds':>9}")
    for method, row in summary.items():
        print(f"{method:<10}{row['content_loss']:>9.3f} ±{row['content_loss_std']:<6.3f}"
              f"{row['style_loss']:>9.3f} ±{row['style_loss_std']:<6.3f}{row['n_pairs']:>7}{row['seconds']:>9.1f}")  # fmt: skip
    return 0
