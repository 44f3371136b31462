"""Style losses channel by channel: an average over 220 pairs, or even one style's 11, can hide that
a single channel moves it.

    python scripts/style_channels.py [--style-cache FEATURE_CACHE_FILE] pair CONTENT STYLE DECODER [DECODER ...]
    python scripts/style_channels.py --style-cache FEATURE_CACHE_FILE outside STYLE_DIR

``pair``, for each decoder: the pair's style loss (as the evaluation of ``docs/training-recipes.md`` measures it, fp32,
images centre-cropped to ``--size`` squares) and its largest parts, one channel's mean or std at one tap each, as a share of
the loss, with the style's value and the output's. With ``--style-cache`` (a ``style-*.safetensors``
file of ``adain train --feature-cache``) also how often the training styles show each of those
channels' means: how much the decoder has seen of what the style asks for. Each line ends with the
flat colour (of nine) that drives the channel's mean most, and by how much: some channels are colours.

``outside``: for each style image, how many channel means at each tap lie above the 99th percentile
of the training styles' (each training style's crops averaged), and above their maximum: the styles
that ask a decoder for more than any painting it trained on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from adain import images
from adain.features import TAP_CHANNELS, tap_statistics
from adain.nets import TAPS, mean_std, taps
from adain.stylize import StyleCode, Stylizer

# where each tap's channels start in the 960 statistics of a feature cache (and of tap_means)
OFFSETS = dict(zip(TAPS, (sum(TAP_CHANNELS[:i]) for i in range(len(TAP_CHANNELS))), strict=True))


def channel_parts(
    out_taps: list[torch.Tensor], style_taps: list[torch.Tensor]
) -> list[tuple[float, str, int, str, float, float]]:
    """(part of the style loss, tap, channel, "mean" or "std", style's value, output's value) for
    every channel: each term of the loss is an MSE over the tap's channels, so a channel's part is its
    squared difference over the tap's channel count."""
    parts = []
    for name, out, ref in zip(TAPS, out_taps, style_taps, strict=True):
        for stat, o, r in zip(("mean", "std"), mean_std(out), mean_std(ref), strict=True):
            o, r = o.flatten(), r.flatten()
            for channel, part in enumerate(((o - r) ** 2 / len(o)).tolist()):
                parts.append((part, name, channel, stat, r[channel].item(), o[channel].item()))
    return parts


def training_means(style_cache: str) -> torch.Tensor:
    """(styles, 960): each training style's channel means at the four taps, its crops averaged."""
    from safetensors.torch import load_file

    return load_file(style_cache)["mean"].mean(1)


FLAT_COLOURS = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "yellow": (1, 1, 0), "cyan": (0, 1, 1),
                "magenta": (1, 0, 1), "white": (1, 1, 1), "grey": (0.5, 0.5, 0.5), "black": (0, 0, 0)}  # fmt: skip


@torch.inference_mode()
def tap_means(stylizer: Stylizer, image: torch.Tensor) -> torch.Tensor:
    """(960,): the image's channel means at the four taps, laid out as a feature cache's."""
    return tap_statistics(taps(stylizer.encode_fp32, image), None, 0)[0][0]


def flat_colour_means(stylizer: Stylizer) -> dict[str, torch.Tensor]:
    """Each flat colour's channel means at the four taps (960): what a channel responds to, when it
    is a colour rather than a texture."""
    return {
        name: tap_means(
            stylizer, torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, 64, 64)
        )
        for name, rgb in FLAT_COLOURS.items()
    }


def pair(args: argparse.Namespace) -> None:
    content = images.load_square(args.content, args.size)
    style = images.load_square(args.style, args.size)
    cache = training_means(args.style_cache) if args.style_cache else None
    style_taps = colours = code = None  # the encoder's, the same for every decoder: from the first
    for decoder in args.decoders:
        stylizer = Stylizer.from_pretrained(args.vgg, decoder, "cpu", precision="fp32")  # as the evaluation
        with torch.inference_mode():
            if style_taps is None:
                style_taps = taps(stylizer.encode_fp32, style)
                code = StyleCode(*mean_std(style_taps[-1]), "style")
                colours = flat_colour_means(stylizer)
            output = stylizer.stylize_tensor(content, [code])
            parts = channel_parts(taps(stylizer.encode_fp32, output), style_taps)
        total = sum(part for part, *_ in parts)
        print(f"{decoder}: style loss {total:.3f}")
        for part, tap, channel, stat, ref, out in sorted(parts, reverse=True)[: args.top]:
            line = f"  {tap} channel {channel} {stat}: {part:.3f} ({part / total:.0%}), style {ref:.2f}, output {out:.2f}"
            if cache is not None and stat == "mean":
                seen = cache[:, OFFSETS[tap] + channel]
                line += (
                    f"; training styles' means: median {seen.median():.2f}, 99th percentile {seen.quantile(0.99):.2f}, "
                    f"{int((seen >= ref).sum())} of {len(seen)} at least the style's"
                )
            strongest = max(colours, key=lambda name: colours[name][OFFSETS[tap] + channel])
            line += f"; flat {strongest}: mean {colours[strongest][OFFSETS[tap] + channel]:.1f}"
            print(line)


def outside(args: argparse.Namespace) -> None:
    cache = training_means(args.style_cache)
    high, highest = cache.quantile(0.99, dim=0), cache.max(0).values
    stylizer = Stylizer.from_pretrained(args.vgg, None, "cpu", precision="fp32")
    print(f"channel means above the {len(cache)} training styles' 99th percentile (and their maximum), "
          f"per tap ({', '.join(TAPS)})")  # fmt: skip
    for path in sorted(p for p in Path(args.style_dir).iterdir() if p.is_file()):
        means = tap_means(stylizer, images.load_square(path, args.size))
        counts = [
            f"{int((means[s] > high[s]).sum())} ({int((means[s] > highest[s]).sum())})"
            for s in (
                slice(OFFSETS[tap], OFFSETS[tap] + n) for tap, n in zip(TAPS, TAP_CHANNELS, strict=True)
            )
        ]
        print(f"  {path.name}: {', '.join(counts)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vgg", help="the encoder's weights (default: the packaged VGG-19, as adain eval)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--style-cache", help="a feature cache's style-*.safetensors file")
    sub = parser.add_subparsers(dest="mode", required=True)
    one = sub.add_parser("pair", help="one pair's style loss by channel, for each decoder")
    one.add_argument("content")
    one.add_argument("style")
    one.add_argument("decoders", nargs="+")
    one.add_argument("--top", type=int, default=5)
    one.set_defaults(run=pair)
    each = sub.add_parser("outside", help="each style's channel means beyond the training styles'")
    each.add_argument("style_dir")
    each.set_defaults(run=outside)
    args = parser.parse_args()
    if args.mode == "outside" and not args.style_cache:
        parser.error("outside needs --style-cache")
    args.run(args)


if __name__ == "__main__":
    main()
