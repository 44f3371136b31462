"""What a wider decoder costs: seconds to stylize one image and seconds per cached training step,
for each ``--decoder-width``, the widths taking turns so that all see the same machine load.

    python benchmarks/decoder_width.py [--widths 1,1.5,2] [--size 512] [--batch-size 4]
        [--crop-size 256] [--iters 3] [--out benchmarks/results/decoder_width.json]

Each wide decoder is the shipped one widened (``nets.widen_decoder``), so every width paints the
same image and the timings compare the same work. Inference is ``Stylizer``'s default path (encode,
AdaIN, decode; the style encoded once beforehand, as a server or video does); the training step is
``adain train --feature-cache``'s (``train_step.cached_step``) at ``--precision auto``.
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch
from PIL import Image
from results_file import add_out_flags, parse_args, write_results
from train_step import cached_step, time_alternating

from adain import weights
from adain.devices import dtype_name, keep_freed_memory, pick_precision
from adain.losses import AdaINLoss
from adain.nets import Encoder, widen_decoder
from adain.stylize import Stylizer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--widths", type=lambda text: [float(w) for w in text.split(",")], default=[1.0, 1.5, 2.0]
    )
    parser.add_argument("--size", type=int, default=512, help="the stylized image's side (default 512)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--iters", type=int, default=3)
    add_out_flags(parser, "decoder_width.json")
    args = parse_args(parser)
    torch.manual_seed(0)
    narrow, _ = weights.load_decoder()
    decoders = {width: widen_decoder(narrow, width) for width in args.widths}
    encoder = Encoder().eval().requires_grad_(False)
    encoder.load_state_dict(weights.build_encoder_state())
    keep_freed_memory(True)
    dtype = pick_precision("auto", torch.device("cpu"))

    content = torch.rand(1, 3, args.size, args.size)
    style = Image.fromarray((torch.rand(args.size, args.size, 3) * 255).byte().numpy())
    painting, training = [], []
    for decoder in decoders.values():
        stylizer = Stylizer(encoder, copy.deepcopy(decoder).eval(), "cpu")
        code = stylizer.encode_style(style)
        painting.append(lambda s=stylizer, c=code: s.stylize_tensor(content, [c]))
        trained = copy.deepcopy(decoder).train().requires_grad_(True)
        model = AdaINLoss(encoder, trained).to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(trained.parameters(), 1e-5)
        training.append(cached_step(model, optimizer, dtype, args.batch_size, args.crop_size))
    with torch.inference_mode():
        paint_times = [statistics.median(t) for t in time_alternating(painting, args.iters)]
    step_times = [statistics.median(t) for t in time_alternating(training, args.iters)]

    print(f"{torch.get_num_threads()} threads, precision {dtype_name(dtype)}; stylize {args.size}², "
          f"train batch {args.batch_size} of {args.crop_size} px cached crops")  # fmt: skip
    print("| width | parameters | stylize s | x width 1 | train step s | x width 1 |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = []
    for (width, decoder), paint, step in zip(decoders.items(), paint_times, step_times, strict=True):
        params = sum(p.numel() for p in decoder.parameters())
        rows.append({"width": width, "parameters": params, "stylize_s": paint, "train_step_s": step,
                     "stylize_ratio": paint / paint_times[0], "train_step_ratio": step / step_times[0]})  # fmt: skip
        print(f"| {width:g} | {params:,} | {paint:.3f} | {paint / paint_times[0]:.2f} | {step:.3f} | "
              f"{step / step_times[0]:.2f} |")  # fmt: skip
    write_results(args.out, {"threads": torch.get_num_threads(), "precision": dtype_name(dtype),
                             "size": args.size, "batch_size": args.batch_size, "crop_size": args.crop_size,
                             "widths": rows})  # fmt: skip


if __name__ == "__main__":
    main()
