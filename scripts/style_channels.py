"""Which loss-network channels carry one pair's style loss, for one or more decoders: an average
over 220 pairs, or even one style's 11, can hide that a single channel moves it.

    python scripts/style_channels.py CONTENT STYLE DECODER [DECODER ...] [--size 512] [--top 5]
        [--style-cache FEATURE_CACHE_FILE]

For each decoder: the pair's style loss (as the evaluation of ``docs/training-recipes.md`` measures it, fp32,
images centre-cropped to ``--size`` squares) and its largest parts, one channel's mean or std at one tap each, as a share of
the loss, with the style's value and the output's. With ``--style-cache`` (a ``style-*.safetensors``
file of ``adain train --feature-cache``) also how often the training styles show each of those
channels' means: how much the decoder has seen of what the style asks for.
"""

from __future__ import annotations

import argparse

import torch

from adain import images
from adain.nets import TAPS, mean_std, taps
from adain.stylize import StyleCode, Stylizer


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("content")
    parser.add_argument("style")
    parser.add_argument("decoders", nargs="+")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--vgg", help="the encoder's weights (default: the packaged VGG-19, as adain eval)")
    parser.add_argument("--style-cache", help="a feature cache's style-*.safetensors file")
    args = parser.parse_args()
    content = images.load_square(args.content, args.size)
    style = images.load_square(args.style, args.size)
    cache = None
    if args.style_cache:
        from safetensors.torch import load_file

        cache = load_file(args.style_cache)["mean"].mean(1)  # (styles, 960): each style's crops averaged
    offsets = dict(zip(TAPS, torch.tensor([0, 64, 128, 256]).cumsum(0).tolist(), strict=True))
    for decoder in args.decoders:
        stylizer = Stylizer.from_pretrained(args.vgg, decoder, "cpu", precision="fp32")  # as the evaluation
        with torch.inference_mode():
            style_taps = taps(stylizer.encode_fp32, style)
            output = stylizer.stylize_tensor(content, [StyleCode(*mean_std(style_taps[-1]), "style")])
            parts = channel_parts(taps(stylizer.encode_fp32, output), style_taps)
        total = sum(part for part, *_ in parts)
        print(f"{decoder}: style loss {total:.3f}")
        for part, tap, channel, stat, ref, out in sorted(parts, reverse=True)[: args.top]:
            line = f"  {tap} channel {channel} {stat}: {part:.3f} ({part / total:.0%}), style {ref:.2f}, output {out:.2f}"
            if cache is not None and stat == "mean":
                seen = cache[:, offsets[tap] + channel]
                line += (
                    f"; training styles' means: median {seen.median():.2f}, 99th percentile {seen.quantile(0.99):.2f}, "
                    f"{int((seen >= ref).sum())} of {len(seen)} at least the style's"
                )
            print(line)


if __name__ == "__main__":
    main()
