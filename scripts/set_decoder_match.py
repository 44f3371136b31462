"""Give a decoder file the decoder match it paints with by default (issue 14, session 49).

    python scripts/set_decoder_match.py DECODER --share 0.65 [--layers 0,6] [--covariance] --out OUT [--overwrite]

The weights are copied unchanged; the metadata records the share and the layers
(``weights.decoder_match_meta``), which every loader then follows unless told otherwise
(``--decoder-match 0`` gives the paper's pipeline). ``--share 0`` removes a recorded match. The
shipped decoder is stage 10's weights with ``--share 0.65 --layers 0,6``, the share at which its
content loss at 512² stays inside issue 14's allowance (docs/MODEL_CARD.md, "Stage 11").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adain import weights
from adain.errors import AdainError


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("decoder", type=Path)
    parser.add_argument("--share", type=float, required=True, help="0-1; 0 removes the match")
    parser.add_argument("--layers", help="the decoder's ReLUs, 0-7, comma-separated (default 0,6)")
    parser.add_argument(
        "--covariance", action="store_true", help="the layers moved to the style's covariance"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if args.out.exists() and not args.overwrite:
        raise SystemExit(f"{args.out} exists; --overwrite to replace it")
    try:
        layers = None if args.layers is None else [int(k) for k in args.layers.split(",")]
    except ValueError:
        raise SystemExit(f"--layers: {args.layers!r} is not a comma-separated list of ReLUs 0-7") from None
    try:
        weights.set_decoder_match(args.decoder, args.out, args.share, layers, args.covariance)
    except AdainError as e:
        raise SystemExit(str(e)) from None
    found = weights.DecoderWeights.read(args.out)
    layers_text = ",".join(map(str, found.decoder_match_layers or ()))
    kind = " (covariance)" if found.decoder_match_covariance else ""
    print(
        f"{args.out}: decoder match {found.decoder_match:g} at ReLUs {layers_text or 'none'}{kind}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
