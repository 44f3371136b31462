"""What ``--feedback`` costs, and what ``--feedback-preview`` saves of it: one pass, feedback with
its first pass at full size, and feedback with the first pass on the content scaled by each preview
scale, timed in turns in one run (a style encoded once, as a batch or a server does). What each
keeps of feedback's gain in style loss is measured by ``scripts/style_channels.py feedback
--preview`` on the canonical pairs (README, "Feedback").

    python benchmarks/feedback_preview.py [--sizes 1024,2048] [--previews 0.25,0.5,0.75] [--share 0.5] [--runs 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from inference import smooth_image, timed
from results_file import add_out_flags, parse_args, write_results

from adain import Stylizer
from adain.devices import dtype_name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1024,2048", help="content sizes, square (default 1024,2048)")
    parser.add_argument(
        "--previews", default="0.25,0.5,0.75", help="first-pass scales (default 0.25,0.5,0.75)"
    )
    parser.add_argument("--share", type=float, default=0.5, help="the feedback share (default 0.5)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--decoder", type=Path)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    add_out_flags(parser, "feedback_preview.json")
    args = parse_args(parser)
    once = Stylizer.from_pretrained(decoder=args.decoder, device="cpu", precision=args.precision)
    fed = once.with_options(feedback=args.share)
    previews = [float(p) for p in args.previews.split(",")]
    precision = dtype_name(once.dtype or torch.float32)
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, {precision}")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        g = torch.Generator().manual_seed(size)
        content = smooth_image(size, g)
        code = once.encode_style(torch.rand(3, 256, 256, generator=g))
        stylizers = [("one pass", once), ("feedback", fed)]
        stylizers += [(f"preview {p:g}", fed.with_options(feedback_preview=p)) for p in previews]
        times, _ = timed(
            [lambda s=s, c=content, k=code: s.stylize_tensor(c, [k]) for _, s in stylizers], args.runs
        )
        for (name, _), seconds in zip(stylizers, times, strict=True):
            rows.append(
                {"size": size, "mode": name, "seconds": seconds, "against_one_pass": seconds / times[0]}
            )
            print(f"{size:>6} {name:<12} {seconds:>8.2f}s {seconds / times[0]:>6.2f}x")
    write_results(
        args.out,
        {"precision": precision, "threads": torch.get_num_threads(),
         "share": args.share, "rows": rows},
    )  # fmt: skip


if __name__ == "__main__":
    main()
