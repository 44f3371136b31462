"""What ``--feedback`` costs, and what ``--feedback-preview`` saves of it: one pass, feedback with
its first pass at full size, and feedback with the first pass on the content scaled by each preview
scale, timed in turns in one run (a style encoded once, as a batch or a server does). What each
keeps of feedback's gain in style loss is measured by ``scripts/style_channels.py feedback
--preview`` on the canonical pairs (README, "Feedback").

    python benchmarks/feedback_preview.py [--sizes 1024,2048] [--previews 0.25,0.5,0.75] [--share 0.5] [--runs 2]
"""

from __future__ import annotations

import torch
from inference import against_one_pass, timing_parser, timing_setup
from results_file import write_results


def main() -> None:
    parser = timing_parser(__doc__)
    parser.add_argument(
        "--previews", default="0.25,0.5,0.75", help="first-pass scales (default 0.25,0.5,0.75)"
    )
    parser.add_argument("--share", type=float, default=0.5, help="the feedback share (default 0.5)")
    args, once, precision = timing_setup(parser, "1024,2048", 2, "feedback_preview.json")
    fed = once.with_options(feedback=args.share)
    previews = [float(p) for p in args.previews.split(",")]
    variants = [("feedback", fed)] + [
        (f"preview {p:g}", fed.with_options(feedback_preview=p)) for p in previews
    ]
    rows = against_one_pass(once, variants, [int(s) for s in args.sizes.split(",")], args.runs)
    write_results(
        args.out,
        {"precision": precision, "threads": torch.get_num_threads(),
         "share": args.share, "rows": rows},
    )  # fmt: skip


if __name__ == "__main__":
    main()
