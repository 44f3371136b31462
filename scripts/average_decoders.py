"""Average the weights of decoders that branched from one ancestor (a "model soup"): snapshots of
runs started from the same checkpoint sit in one basin, and their mean can be better at 512 x 512
than any of them (issue 14, session 17).

    python scripts/average_decoders.py A.safetensors B.safetensors [...] --out SOUP.safetensors
        [--weights 0.5,0.25,0.25]
    python scripts/average_decoders.py B.safetensors A.safetensors --out PAST_B.safetensors --weights=1.4,-0.4

A negative weight extrapolates: the second line goes on from A through B, 0.4 of the way again
past B (an affine combination; the weights still sum to one after normalising). Write it with
`--weights=` so that the leading minus is not read as a flag.

Each input is a decoder file as `scripts/package_decoder.py` or `adain train` writes it. The mean
is taken in float32 and written in float16 (as shipped), with the first file's metadata, the largest
of the inputs' iteration counts (the deepest branch of their one lineage), and the inputs, their
iterations and weights in `averaged_from`. Decoders with other normalisation layers or encoders
than the first are refused: their weights do not line up.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from adain import weights
from adain.nets import Decoder, width_of


def parse_weights(text: str | None, count: int) -> list[float]:
    """The inputs' weights, normalised to sum to one (equal when not given); negative ones extrapolate."""
    if text is None:
        return [1 / count] * count
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise SystemExit(f"--weights: {text!r} is not a comma-separated list of numbers") from None
    if len(values) != count:
        raise SystemExit(f"--weights: {len(values)} weights for {count} decoders")
    if sum(values) <= 0:
        raise SystemExit("--weights: the weights must sum to more than zero")
    return [v / sum(values) for v in values]


def average(paths: list[Path], shares: list[float]) -> tuple[Decoder, dict[str, str]]:
    """The weighted mean of the decoders in ``paths``, and the metadata to write with it."""
    found = [weights.DecoderWeights.read(path) for path in paths]  # each file's metadata, read once
    first = found[0]
    mean: dict[str, torch.Tensor] = {}
    widths = []
    for path, one, share in zip(paths, found, shares, strict=True):
        state = weights.load_decoder_state(path, one.norm)
        widths.append(width_of(state))
        if (one.norm, one.encoder, widths[-1]) != (first.norm, first.encoder, widths[0]):
            raise SystemExit(f"{path}: another decoder layout or encoder than {paths[0]}; not averaged")
        for key, value in state.items():
            mean[key] = mean.get(key, 0) + share * value.float()
    decoder = Decoder(first.norm, widths[0])
    decoder.load_state_dict(mean)
    # the iteration count is the deepest input's, as the inputs share one lineage; each input's is in
    # averaged_from
    meta = {k: v for k, v in first.metadata.items() if k not in ("format", "norm", "width", "iterations")}
    counts = [one.iterations for one in found]
    if None not in counts:
        meta["iterations"] = str(max(counts))
    meta["weights"] = f"mean of {len(paths)} decoders' weights (averaged_from)"
    meta["averaged_from"] = ", ".join(
        f"{p.name} ({n} iterations) x {s:.3f}" for p, n, s in zip(paths, counts, shares, strict=True)
    )
    return decoder, meta


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("decoders", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--weights",
        help="comma-separated, one per decoder (default: equal; negative ones extrapolate: --weights=1.4,-0.4)",
    )
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if len(args.decoders) < 2:
        raise SystemExit("give two or more decoders to average")
    for path in args.decoders:
        if not path.is_file():
            raise SystemExit(f"{path}: no such file")
    if args.out.exists() and not args.overwrite:
        raise SystemExit(f"{args.out} exists; --overwrite to replace it")
    shares = parse_weights(args.weights, len(args.decoders))
    try:
        decoder, meta = average(args.decoders, shares)
    except weights.WeightsError as e:
        raise SystemExit(str(e)) from None
    weights.export_decoder(decoder, args.out, meta, half=True)
    print(f"{args.out}: {meta['averaged_from']}", file=sys.stderr)


if __name__ == "__main__":
    main()
