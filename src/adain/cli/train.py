"""``adain train``: a decoder trained with the paper's recipe, in chunks if need be."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .. import defaults as d
from . import args as flags


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train a decoder with the paper's recipe")
    flags.add_training_data_flags(parser)
    add = parser.add_argument
    add("--out-dir", required=True, help="checkpoints, logs and the exported decoder")
    add(
        "--max-iter", type=flags.positive_int, default=d.MAX_ITER, help=f"default {d.MAX_ITER}; paper: 160000"
    )
    add("--lr", type=flags.non_negative_float, default=d.LR, help=f"Adam's learning rate (default {d.LR:g})")
    add("--lr-decay", type=flags.non_negative_float, default=d.LR_DECAY,
        help=f"inverse-time decay: lr / (1 + decay x iteration) (default {d.LR_DECAY:g})")  # fmt: skip
    add("--warmup", type=flags.non_negative_int, default=0, metavar="ITERATIONS",
        help="ramp the lr up linearly over this many iterations (fine-tuning with a fresh Adam; default 0)")  # fmt: skip
    add("--style-weight", type=flags.non_negative_float, default=d.STYLE_WEIGHT,
        help=f"lambda (default {d.STYLE_WEIGHT:g})")  # fmt: skip
    add("--content-weight", type=flags.non_negative_float, default=d.CONTENT_WEIGHT,
        help=f"default {d.CONTENT_WEIGHT:g}")  # fmt: skip
    add("--content-target", choices=["t", "fc"], default="t",
        help="ablation: AdaIN output t (paper) or the content features f(c)")  # fmt: skip
    add("--decoder-norm", choices=["none", "batch", "instance"], default="none",
        help="ablation: normalisation layers in the decoder (paper: none)")  # fmt: skip
    add("--decoder-width", type=flags.decoder_width, default=1.0, metavar="W",
        help="the hidden layers' channels times W (a multiple of 1/64 up to 4; default 1, the paper's decoder). A "
        "narrower --init-decoder is widened to W so that the wide one starts painting what it painted; costs "
        "about W squared as much decoder work")  # fmt: skip
    add("--widen", choices=["copy", "fresh"], default="copy",
        help="how a narrower --init-decoder is widened, both keeping what it paints: copy (Net2Net: new channels "
        "copy old ones, with noise so that they part) or fresh (new channels freshly drawn, their weights into the "
        "old ones zero); default copy")  # fmt: skip
    add("--new-channel-lr", type=flags.positive_float, default=1.0, metavar="M",
        help="train the parameters a wider --decoder-width adds to the paper's decoder at M times the lr (e.g. 10: "
        "the new channels learn while the trained ones are fine-tuned); default 1")  # fmt: skip
    add("--save-every", type=flags.positive_int, default=d.SAVE_EVERY,
        help=f"checkpoint interval (default {d.SAVE_EVERY})")  # fmt: skip
    add("--keep-every", type=flags.non_negative_int, default=0, metavar="ITERATIONS",
        help="also keep the decoder every this many iterations as OUT_DIR/snapshots/decoder-N.safetensors "
        "(its moving average with --ema), to choose among or average later; default 0, none")  # fmt: skip
    add(
        "--log-every",
        type=flags.positive_int,
        default=d.LOG_EVERY,
        help=f"log.csv interval (default {d.LOG_EVERY})",
    )
    add("--image-every", type=flags.positive_int, default=d.IMAGE_EVERY,
        help="iterations between preview grids (OUT_DIR/previews, TensorBoard)")  # fmt: skip
    add("--no-tensorboard", dest="tensorboard", action="store_false",
        help="no TensorBoard logs (written to OUT_DIR/tensorboard when the package is installed)")  # fmt: skip
    add("--precision", choices=d.PRECISIONS, default="auto",
        help="auto: fp16/bf16 on CUDA, bf16 on a CPU with native bf16 where it measured faster "
             "($ADAIN_HOME/precision.json), else fp32")  # fmt: skip
    add("--no-channels-last", dest="channels_last", action="store_false")
    add("--no-winograd", dest="winograd", action="store_false",
        help="plain PyTorch convolutions instead of the CPU's Winograd kernels")  # fmt: skip
    add("--resume", action="store_true", help="continue from OUT_DIR/checkpoint.pt")
    add(
        "--overwrite",
        action="store_true",
        help="start afresh in an OUT_DIR that holds a finished run's log and decoder",
    )
    add("--time-limit", type=flags.positive_float, metavar="MINUTES",
        help="stop with a checkpoint before this much time has passed (run a long training in chunks "
        "on machines lent for a few minutes: each chunk --resume's the last); exits 0")  # fmt: skip
    add("--init-decoder", help="start from this decoder (e.g. to continue the shipped one)")
    add("--feature-cache", metavar="DIR",
        help="encode the training images once and keep the features in DIR: content relu4_1 at --load-size "
        "and the style statistics of 16 crops of each style image (or the whole, --style-targets whole), "
        "all cropped in feature space")  # fmt: skip
    add("--style-targets", choices=["crops", "whole"], default="crops",
        help="the style loss's targets: the statistics of each style crop (the paper's) or of the whole "
        "style image (what inference uses; needs --feature-cache)")  # fmt: skip
    add("--style-scales", type=flags.sizes, default=(), metavar="SIZES",
        help="cut the cached style crops at each of these short sides of the style images (e.g. 512,256: "
        "the strokes both coarse and fine); default: --load-size only")  # fmt: skip
    add("--no-style-upscale", dest="style_upscale", action="store_false",
        help="keep style images smaller than --load-size (or a --style-scales size) at their own size, at "
        "least --crop-size, rather than upscaling them (their strokes stay sharp; needs --feature-cache)")  # fmt: skip
    add("--jitter-styles", dest="style_jitter", choices=list(d.STYLE_JITTERS), default="",
        help="turn each cached style crop by a multiple of 90 degrees and mirror it at random (turn+hue: and "
        "rotate the hue of half of them; half-turn: only by 180 degrees, strokes keep their orientation): more "
        "styles than paintings (needs --feature-cache and crop targets)")  # fmt: skip
    add("--mix-styles", dest="style_mix", type=flags.unit_float, default=0.0, metavar="P",
        help="blend each style target, with probability P, with another training style drawn at random "
        "(means and stds averaged with a uniform random weight, as style interpolation does at inference): "
        "styles between the paintings (needs --feature-cache); default 0")  # fmt: skip
    add("--mix-reach", dest="style_mix_reach", type=flags.non_negative_float, default=0.0, metavar="R",
        help="draw --mix-styles' weight from [-R, 1 + R] instead of [0, 1]: some targets beyond either painting, "
        "more marked than both (clamped at zero); default 0")  # fmt: skip
    add("--style-gain", type=flags.non_negative_float, default=0.0, metavar="S",
        help="scale each channel's style mean and std, at every tap, by its own random factor exp(S*z), z standard "
        "normal: styles off the line between paintings, for unseen ones (needs --feature-cache); e.g. 0.2; "
        "default 0")  # fmt: skip
    add("--bold-styles", type=flags.non_negative_float, default=0.0, metavar="B",
        help="draw each style with probability proportional to its energy (the mean square of its relu2_1 channel "
        "means) to the power B, with replacement, instead of each once an epoch: more of the marked styles, "
        "whose style loss is the largest (needs --feature-cache); e.g. 1; default 0")  # fmt: skip
    add("--style-layer-weights", type=flags.numbers, default=(), metavar="W1,W2,W3,W4",
        help="weigh the style loss at relu1_1, relu2_1, relu3_1 and relu4_1 by these (e.g. 1,2,1,1: a recipe that "
        "lets the decoder lose less at relu2_1); the logged style loss is the weighted one; default all 1, "
        "the paper's")  # fmt: skip
    add("--clamp-output", action="store_true",
        help="measure the losses on the output clamped to [0, 1], the image as saved and evaluated (the "
        "pixels beyond the range take the gradient where it brings them back); default: on the raw output, the paper's")  # fmt: skip
    add("--distil-feedback", type=flags.unit_float, default=0.0, metavar="SHARE",
        help="the content target becomes the relu4_1 features of a frozen teacher's two-pass output "
        "(adain stylize --feedback SHARE): one pass learns what two make; default 0, the paper's target")  # fmt: skip
    add("--distil-alpha", type=flags.unit_float, default=1.0, metavar="A",
        help="the teacher's second pass at this AdaIN strength (default 1)")  # fmt: skip
    add("--teacher", metavar="PATH",
        help="the --distil-feedback and decoder match teacher's weights (default: --init-decoder); the run keeps a copy, "
        "teacher.safetensors, which a resumed run uses")  # fmt: skip
    add("--decoder-match-weight", type=flags.non_negative_float, default=0.0, metavar="W",
        help="add a loss, at weight W, pulling the channel means and stds of the decoder's own ReLUs towards what "
        "the teacher's (--teacher, default --init-decoder) hold decoding each whole style image: what "
        "adain stylize --decoder-match does, learnt by one pass (needs --feature-cache and --style-targets "
        "whole); default 0, none")  # fmt: skip
    add("--decoder-match", type=flags.unit_float, default=0.0, metavar="SHARE",
        help="train with adain stylize --decoder-match switched on: each of the decoder's chosen ReLUs moves this share "
        "of the way to what the teacher's hold decoding the whole style image, so the other layers learn to "
        "paint from matched activations; stylize with the same option (needs --feature-cache and "
        "--style-targets whole); default 0, off")  # fmt: skip
    add("--decoder-match-layers", type=flags.decoder_layers, default=d.DECODER_MATCH_LAYERS,
        metavar="K,K", help=f"the ReLUs --decoder-match and --decoder-match-weight use, 0 to 7 (default "
        f"{','.join(map(str, d.DECODER_MATCH_LAYERS))})")  # fmt: skip
    add("--ema", type=flags.non_negative_float, default=0.0, metavar="DECAY",
        help="export an exponential moving average of the decoder's weights, updated every step with this "
        "decay (e.g. 0.999: about the last 1,000 steps); default 0, the weights as trained")  # fmt: skip
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()  # a chunk's time limit counts the start-up too
    from ..train import TrainConfig, Trainer, check_out_dir

    check_out_dir(Path(args.out_dir), args.resume, args.overwrite)
    fields = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
    trainer = Trainer(TrainConfig(**fields), progress=not args.quiet, command=args.command_line)
    if args.resume and trainer.resume():
        print(f"resuming at iteration {trainer.iteration}", file=sys.stderr)
    elif args.overwrite:
        trainer.start_afresh()
    if trainer.dist.is_main:
        print(f"adain: training on {trainer.describe()}", file=sys.stderr)
    time_limit = args.time_limit * 60 - (time.monotonic() - started) if args.time_limit else None
    try:
        decoder = trainer.run(time_limit)
    except KeyboardInterrupt as stop:
        print(f"adain: {stop or 'interrupted'}", file=sys.stderr)
        return 130
    if decoder is None:
        print(f"adain: time limit reached at iteration {trainer.iteration} of {args.max_iter}; "
              "checkpoint saved, --resume continues", file=sys.stderr)  # fmt: skip
        return 0
    skipped = trainer.skipped
    if skipped:
        print(
            f"adain: skipped {skipped} unreadable training image{'s' if skipped > 1 else ''}", file=sys.stderr
        )
    print(f"decoder written to {decoder} and {decoder.with_suffix('.pth')}", file=sys.stderr)
    return 0
