"""``adain video``: every frame of a video stylized, its timing and sound kept."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import defaults
from ..errors import AdainError
from . import args as flags


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("video", help="stylize a video, keeping its frame rate and sound")
    add = parser.add_argument
    add("input", type=Path, help="a video file")
    add("-s", "--style", nargs="+", type=Path, required=True, help="style image(s) or saved styles")
    add("-o", "--output", type=Path, required=True, help="output video (.mp4, .m4v, .mov, .mkv)")
    add("--alpha", type=flags.unit_float, default=1.0, help="style strength, 0-1 (default 1)")
    add("--style-weights", type=flags.style_weights, metavar="W1,W2,...", help="blend the styles")
    add("--style-size", type=flags.non_negative_int, default=defaults.STYLE_SIZE,
        help=f"style short side (default {defaults.STYLE_SIZE})")  # fmt: skip
    add("--temporal", type=flags.momentum, nargs="?", const=defaults.TEMPORAL_STRENGTH, metavar="STRENGTH",
        help="no flicker: each frame blended with the previous result carried along the optical flow, "
             f"0-1 (default {defaults.TEMPORAL_STRENGTH}; needs OpenCV, in adain[video])")  # fmt: skip
    add("--stable", dest="temporal", type=flags.momentum, nargs="?", const=defaults.TEMPORAL_STRENGTH,
        metavar="STRENGTH", help="the earlier name of --temporal")  # fmt: skip
    add("--mask", type=Path, help="two styles: white in the mask gets the first, black the second")
    add("--preserve-color", action="store_true",
        help="keep each frame's colours (the style recoloured per frame: about twice the work)")  # fmt: skip
    flags.add_feedback_flag(parser)
    flags.add_palette_flag(parser)
    flags.add_decoder_match_flag(parser)
    add("--batch", type=flags.positive_int, default=defaults.VIDEO_BATCH,
        help=f"frames stylized together (default {defaults.VIDEO_BATCH})")  # fmt: skip
    add("--codec", default=defaults.VIDEO_CODEC, help=f"video encoder (default {defaults.VIDEO_CODEC})")
    add(
        "--crf",
        type=flags.crf,
        default=defaults.VIDEO_CRF,
        help=f"x264/x265 quality, 0-51 (lower is better; default {defaults.VIDEO_CRF})",
    )
    flags.add_max_memory_flag(parser, "frames", polish=False)
    add("--overwrite", action="store_true", help="replace an existing output")
    flags.add_weights_flags(parser)
    flags.add_quiet_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from ..video import FramePainter, stylize_video
    except ImportError:
        raise AdainError("adain video needs PyAV: pip install 'adain[video]'") from None
    from ..stylize import StyleCode

    flags.check_flag_controls(args.alpha, len(args.style), args.style_weights, args.mask is not None)
    options = {
        **flags.feedback_options(args),
        **flags.palette_option(args),
        **flags.decoder_match_options(args),
    }
    if args.output.exists() and not args.overwrite:
        raise AdainError(f"{args.output} exists (pass --overwrite to replace it)")
    stylizer = flags.stylizer_from(args, max_memory_mb=args.max_memory, **options)
    styles = [StyleCode.load(path) if path.suffix == ".safetensors" else path for path in args.style]
    paint = FramePainter(stylizer, styles, args.alpha, args.style_weights, args.mask, args.preserve_color,
                         args.temporal, args.style_size)  # fmt: skip
    done = stylize_video(paint, args.input, args.output, args.codec, args.crf, args.overwrite,
                         progress=not args.quiet, batch=args.batch)  # fmt: skip
    if done["scaled_frames"]:
        print(f"adain: warning: {done['scaled_frames']} frames of another size were scaled to "
              f"{done['width']}x{done['height']}", file=sys.stderr)  # fmt: skip
    if not args.quiet:
        sound = "with its audio" if done["audio"] else "no audio stream"
        cuts = f", {done['scene_cuts']} scene cuts" if args.temporal is not None else ""
        print(f"adain: wrote {done['frames']} frames ({done['width']}x{done['height']}, {done['fps']:g} fps, "
              f"{sound}{cuts}) to {args.output}", file=sys.stderr)  # fmt: skip
    return 0
