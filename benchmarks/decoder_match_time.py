"""What ``--decoder-match`` costs: one pass against one pass with the decoder's chosen ReLUs moved
towards the style's own statistics (a per-channel map measured on the whole image), timed in turns
in one run with a style encoded once, as a batch or a server does; and what encoding a style costs
with the decoder's statistics (one more decoder pass) and without. What it gains in style loss is
measured by ``benchmarks/decoder_matching.py`` and ``adain eval --decoder-match`` (README,
"Decoder match").

    python benchmarks/decoder_match_time.py [--sizes 512,1024] [--share 0.75] [--layers 0,6] [--runs 3]
        [--backend onnx] [--covariance]

``--covariance`` times the covariance match too (``decoder_match_covariance``: a C x C map per
chosen layer, whose matrix roots are taken per image), beside the per-channel one.
"""

from __future__ import annotations

import torch
from inference import against_one_pass, smooth_image, timed, timing_parser, timing_setup
from results_file import write_results


def main() -> None:
    parser = timing_parser(__doc__)
    parser.add_argument("--share", type=float, default=0.75, help="the match's share (default 0.75)")
    parser.add_argument("--layers", default="0,6", help="the decoder's ReLUs it moves (default 0,6)")
    parser.add_argument("--style-size", type=int, default=512, help="the style encoded (default 512)")
    parser.add_argument("--covariance", action="store_true", help="the covariance match as well")
    args, once, precision = timing_setup(parser, "512,1024", 3, "decoder_match_time.json")
    layers = tuple(int(k) for k in args.layers.split(","))
    matching = once.with_options(decoder_match=args.share, decoder_match_layers=layers)
    variants = [(f"match {args.share:g}", matching)]
    covariance = matching.with_options(decoder_match_covariance=True)
    if args.covariance:
        variants.append((f"match {args.share:g} covariance", covariance))
    rows = against_one_pass(once, variants, [int(s) for s in args.sizes.split(",")], args.runs)
    style = smooth_image(args.style_size, torch.Generator().manual_seed(1))[0]
    encoders = [lambda: once.encode_style(style), lambda: matching.encode_style(style)]
    if args.covariance:
        encoders.append(lambda: covariance.encode_style(style))
    seconds, _ = timed(encoders, args.runs)
    plain, matched = seconds[:2]
    print(f"encoding a {args.style_size}² style: {plain:.3f}s, with the decoder's statistics {matched:.3f}s "
          f"({matched / plain:.2f}x)")  # fmt: skip
    if args.covariance:
        print(f"  with the covariances too {seconds[2]:.3f}s ({seconds[2] / plain:.2f}x)")
    write_results(args.out, {
        "backend": args.backend, "precision": precision, "threads": torch.get_num_threads(), "share": args.share, "layers": list(layers),
        "rows": rows, "style_size": args.style_size, "encode_style_seconds": plain,
        "encode_style_with_decoder_seconds": matched, "covariance": args.covariance,
        "encode_style_with_covariances_seconds": seconds[2] if args.covariance else None,
    })  # fmt: skip


if __name__ == "__main__":
    main()
