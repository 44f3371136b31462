"""How far a decoder's own layers are, decoding AdaIN's target t, from what they hold decoding the
style itself: the gap that ``adain stylize --decoder-match`` closes per image, and that
``adain train --decoder-match-weight`` asks the weights to close (session 47).

For random (photo, painting) pairs of the 512 px training sets, each at 512 px, the channel means
and stds of every decoder ReLU's input (pre) and output (post), decoding t = AdaIN(f(c), f(s)) and
decoding f(s) with the ``--teacher`` (default: the decoder itself). Prints, per ReLU, the mean
over the pairs of the squared gap relative to the style's (sum over channels of (a - b)^2 over
the sum of b^2), for the means and for the stds, and the scale of the style's statistics after
the ReLU (the mean square of its channel means and stds):

    python scripts/decoder_layer_gap.py src/adain/decoder.safetensors [OTHER ...] [--pairs 12]
        [--teacher src/adain/decoder.safetensors] [--decode style]

With ``--decode style`` each decoder decodes the style too, so the table says how far its own
statistics of the style, the targets ``adain stylize --decoder-match`` gives it, have drifted from
the teacher's, which ``adain train --decoder-match`` trained it towards (session 48).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch
from torch import Tensor

from adain import images, weights
from adain.nets import Decoder, adain, mean_std

SHARED = Path(__file__).resolve().parents[2] / "shared"


def relu_statistics(decoder: Decoder, features: Tensor) -> list[tuple[Tensor, ...]]:
    """(pre mean, pre std, post mean, post std) at each of the decoder's ReLUs decoding ``features``."""
    found, x = [], features
    for i, layer in enumerate(decoder):
        if i in decoder.relu_index:
            pre = mean_std(x)
            x = torch.relu(x)
            found.append((*pre, *mean_std(x)))
        else:
            x = layer(x)
    return found


def relative(a: Tensor, b: Tensor) -> float:
    return ((a - b).square().sum() / b.square().sum()).item()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("decoders", nargs="+", type=Path)
    parser.add_argument(
        "--teacher", type=Path, help="the decoder that decodes the style (default: each itself)"
    )
    parser.add_argument("--content-dir", type=Path, default=SHARED / "data" / "content" / "train512")
    parser.add_argument("--style-dir", type=Path, default=SHARED / "data" / "style" / "train512")
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument(
        "--decode", choices=("t", "style"), default="t", help="what each decoder decodes (default t)"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    encoder, _ = weights.load_encoder(None)
    teacher = weights.decoder_from_file(args.teacher).eval() if args.teacher else None
    contents, styles = (images.find_images(d) for d in (args.content_dir, args.style_dir))
    draw = random.Random(args.seed)
    pairs = [(draw.choice(contents), draw.choice(styles)) for _ in range(args.pairs)]

    with torch.inference_mode():
        encoded = []
        for content, style in pairs:
            # the 512 px sets are 512 x 512 already: the centre square is the image
            content_feat, style_feat = (
                encoder(images.load_square(content, 512)),
                encoder(images.load_square(style, 512)),
            )
            encoded.append((adain(content_feat, style_feat), style_feat))
        for path in args.decoders:
            decoder = weights.decoder_from_file(path).eval()
            gaps = torch.zeros(len(decoder.relu_index), 5)
            for t, style_feat in encoded:
                made = relu_statistics(decoder, t if args.decode == "t" else style_feat)
                wanted = relu_statistics(teacher or decoder, style_feat)
                for k, (ours, theirs) in enumerate(zip(made, wanted, strict=True)):
                    scale = torch.cat([theirs[2].flatten(), theirs[3].flatten()]).square().mean().item()
                    gaps[k] += torch.tensor(
                        [*(relative(a, b) for a, b in zip(ours, theirs, strict=True)), scale]
                    )
            gaps /= len(encoded)
            print(f"\n{path} decoding {args.decode} ({len(encoded)} pairs; the style decoded by "
                  f"{args.teacher or 'itself'})\n")  # fmt: skip
            print("| ReLU | pre: means | pre: stds | post: means | post: stds | the style's scale |")
            print("|---:|---:|---:|---:|---:|---:|")
            for k, row in enumerate(gaps.tolist()):
                print(f"| {k} | " + " | ".join(f"{v:.4f}" for v in row[:4]) + f" | {row[4]:.3g} |")


if __name__ == "__main__":
    main()
