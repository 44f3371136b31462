"""Style losses channel by channel: an average over 220 pairs, or even one style's 11, can hide that
a single channel moves it.

    python scripts/style_channels.py [--style-cache FEATURE_CACHE_FILE] pair CONTENT STYLE DECODER [DECODER ...]
    python scripts/style_channels.py --style-cache FEATURE_CACHE_FILE outside STYLE_DIR
    python scripts/style_channels.py --style-cache FEATURE_CACHE_FILE predict [--styles STYLE_DIR]
    python scripts/style_channels.py clamp CONTENT_DIR STYLE_DIR DECODER [DECODER ...]
    python scripts/style_channels.py sharpen CONTENT_DIR STYLE_DIR DECODER [DECODER ...] [--amounts A ...] [--sigmas S ...]
    python scripts/style_channels.py feedback CONTENT_DIR STYLE_DIR DECODER [--settings ETA:ALPHA ...] [--preview N ...]
    python scripts/style_channels.py polish CONTENT_DIR STYLE_DIR DECODER [--every K] [--steps N ...]
        [--style-weights W ...] [--rates LR ...]
    python scripts/style_channels.py --style-cache FEATURE_CACHE_FILE energy PAIRS_CSV STYLE_DIR
        [--boldest N --links STYLE_LINKS --only SUBFOLDER --into DIR]

``pair``, for each decoder: the pair's style loss (as the evaluation of ``docs/training-recipes.md`` measures it, fp32,
images centre-cropped to ``--size`` squares) and its largest parts, one channel's mean or std at one tap each, as a share of
the loss, with the style's value and the output's. With ``--style-cache`` (a ``style-*.safetensors``
file of ``adain train --feature-cache``) also how often the training styles show each of those
channels' means: how much the decoder has seen of what the style asks for. Each line ends with the
flat colour (of nine) that drives the channel's mean most, and by how much: some channels are colours.

``predict``: how much of the training styles' statistics at each tap the decoder can know from what
AdaIN gives it, the style's relu4_1 channel means and stds: R^2 on held-out styles of a ridge
regression and of a small MLP from those 1,024 numbers to each tap's means and stds (R^2 over the
tap's channels together, so it is the share of an MSE-of-statistics loss that a decoder could
remove by knowing the style, against one that makes every style's average). With ``--styles DIR``,
also the style loss's terms, in ``adain eval``'s units, of outputs whose statistics were those
predictions for the (unseen) styles in DIR: what a decoder that knew no more than relu4_1's
statistics would miss of each tap. Not a strict floor (an output's statistics also follow its
content), but where it is far below a decoder's own terms, the decoder falls short of what it
is given.

``clamp``, for each decoder: the share of its output pixels outside [0, 1] on the pairs of the two
folders (``--every K``: every K-th content and style), and the style loss per tap and the content
loss of the raw output against those of the output clamped, as it is saved and as ``adain eval``
measures it, and of two other ways into [0, 1] (``RANGE_MAPS``: out-of-range pixels desaturated
towards their grey; a soft knee).

``sharpen``: the same measures as ``clamp`` for the clamped output and for unsharp masks of it
(each of ``--amounts`` times the difference from a Gaussian blur of each of ``--sigmas`` pixels):
whether contrast at the finest scales, the same for every style, is what the style loss misses.

``feedback``: how far the decoder's output misses the relu4_1 statistics it is given, and what one
pass of feedback buys. The output's relu4_1 channel means and stds are regressed on the target's,
per channel over the pairs (a slope below 1: the decoder shrinks the styles towards an average
one; the share of the miss that the line explains is the part a fixed correction could remove).
Then, for each ``ETA:ALPHA``, the pairs are decoded again from targets corrected by ETA of the miss
(``adain.nets.feedback_targets``, as ``--feedback ETA`` does) at AdaIN strength ALPHA, and the
content and style loss are printed with the style loss's terms per tap. ``0:1`` is the plain
pipeline. It costs a second encode and decode per image. With ``--fixed``, also each setting with
the miss foretold by the per-channel lines instead of measured (a correction that would cost
nothing at inference, fitted on these very pairs). With ``--preview N``, also each setting with
the miss measured on a first pass of the content at N px instead of at ``--size`` (a cheaper
first pass: (N / size)² of its work).

``polish``: for each step count of ``--steps`` (``adain.gatys.polish`` from the plain pass's
output, the pairs of the two folders, ``--every K``), each of ``--style-weights`` (the content's
weight being 1; Adam ignores the loss's scale, so a style weight of 10 / k is a content weight of
k), each of Adam's ``--rates`` and each ``--arithmetic`` of the steps, the content and style loss,
Gatys et al.'s Gram-matrix loss at the same four taps (which nothing here optimises: whether the steps do more
than fit the eight numbers per tap), the mean change of the pixels, in levels of 255, and the
seconds a polish call took (on a busy machine, only a rough guide: ``benchmarks/polish.py`` times).

``outside``: for each style image, how many channel means at each tap lie above the 99th percentile
of the training styles' (each training style's crops averaged), and above their maximum: the styles
that ask a decoder for more than any painting it trained on.

``energy``: each style of an ``adain eval`` pairs.csv (its styles in STYLE_DIR) with its mean style
loss and its energy (``adain.features.style_energy``: the mean square of its relu2_1 channel means,
what ``adain train --bold-styles`` draws by), the energy's percentile among the training styles of
the cache, the correlation of loss and energy over the styles, and how many of the draws the most
energetic tenth of the training styles gets at a few ``--bold-styles`` powers. With ``--boldest N --links DIR
--into OUT``: symlinks in OUT to the N training styles of highest energy (the cache's rows are the
images of its style folder, DIR, in ``adain.images.find_images(DIR, recursive=True)``'s order;
``--only`` keeps those under one subfolder of it), a style folder for ``rank_decoders.py``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from adain import images
from adain.colour import palette_of, toward_palette
from adain.defaults import POLISH_STYLE_WEIGHT
from adain.features import TAP_CHANNELS, tap_statistics
from adain.gatys import POLISH_LR, polish
from adain.losses import content_loss, style_loss_terms
from adain.nets import TAPS, adain_stats, feedback_targets, mean_std, taps
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


def predict(args: argparse.Namespace) -> None:
    from safetensors.torch import load_file

    cache = load_file(args.style_cache)
    mean, std = cache["mean"].float(), cache["std"].float()  # (styles, crops, 960)
    styles, crops = mean.shape[:2]
    given = given_of(mean, std).flatten(0, 1)
    wanted = torch.cat([mean, std], -1).flatten(0, 1)  # each crop is one target, as in training
    held = torch.randperm(styles, generator=torch.Generator().manual_seed(0))[: styles // 5]
    test = torch.zeros(styles, dtype=torch.bool)
    test[held] = True
    test = test.repeat_interleave(crops)
    centre, scale = given[~test].mean(0), given[~test].std(0).clamp_min(1e-3)
    x, y = (given[~test] - centre) / scale, wanted[~test]
    x_test, y_test = (given[test] - centre) / scale, wanted[test]
    predictors = {f"ridge {ridge:g}": ridge_fit(x, y, ridge) for ridge in args.ridge}
    predictors[f"MLP ({args.steps} steps)"] = mlp_fit(x, y, args.steps)
    print(f"{styles} training styles ({crops} crops each), {len(held)} held out; R^2 on them, per tap:")
    variance = terms(y.mean(0).expand_as(y_test), y_test)  # the residual of knowing nothing
    with torch.no_grad():
        for name, predictor in predictors.items():
            residual = terms(predictor(x_test), y_test)
            print(f"  {name}: " + ", ".join(f"{t} {1 - residual[t] / variance[t]:.2f}" for t in residual))
    if not args.styles:
        return
    stylizer = Stylizer.from_pretrained(args.vgg, None, "cpu", precision="fp32")
    paths = sorted(p for p in Path(args.styles).iterdir() if p.is_file())
    with torch.inference_mode():
        stats = [
            tap_statistics(taps(stylizer.encode_fp32, images.load_square(p, args.size)), None, 0)
            for p in paths
        ]
    mean, std = torch.cat([m for m, _ in stats]), torch.cat([s for _, s in stats])
    truth, x_new = torch.cat([mean, std], -1), (given_of(mean, std) - centre) / scale
    print(
        f"the style loss's terms (MSEs, as adain eval's) of outputs whose statistics were the prediction, "
        f"over the {len(paths)} styles of {args.styles} at {args.size}²:"
    )
    with torch.no_grad():
        for name, predictor in predictors.items():
            missed = terms(predictor(x_new), truth)
            print(
                f"  {name}: total {sum(missed.values()):.3f}; "
                + ", ".join(f"{t} {v:.3f}" for t, v in missed.items())
            )


def given_of(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """What AdaIN gives the decoder of a style: its relu4_1 channel means and stds."""
    deep = slice(OFFSETS["relu4_1"], None)
    return torch.cat([mean[..., deep], std[..., deep]], -1)


def terms(prediction: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """The style loss's eight terms between two (N, 2 x 960) sets of statistics, averaged over N:
    per tap and statistic the MSE over the tap's channels."""
    out = {}
    for k, stat in enumerate(("mean", "std")):
        for tap, n in zip(TAPS, TAP_CHANNELS, strict=True):
            cols = slice(k * 960 + OFFSETS[tap], k * 960 + OFFSETS[tap] + n)
            out[f"{tap} {stat}"] = (prediction[:, cols] - truth[:, cols]).pow(2).mean().item()
    return out


def ridge_fit(x: torch.Tensor, y: torch.Tensor, ridge: float):
    design = torch.cat([x, torch.ones(len(x), 1)], 1)
    penalty = ridge * torch.eye(design.shape[1])
    penalty[-1, -1] = 0  # the intercept is not shrunk
    w = torch.linalg.solve(design.T @ design + penalty, design.T @ y)
    return lambda new: torch.cat([new, torch.ones(len(new), 1)], 1) @ w


def mlp_fit(x: torch.Tensor, y: torch.Tensor, steps: int) -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], 512), torch.nn.ReLU(), torch.nn.Linear(512, y.shape[1])
    )
    optimiser = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-3)
    for _ in range(steps):
        batch = torch.randint(len(x), (512,))
        loss = (net(x[batch]) - y[batch]).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return net


LUMA = (0.299, 0.587, 0.114)  # Rec. 601, as Pillow's "L"


def desaturated(image: torch.Tensor) -> torch.Tensor:
    """Each pixel outside [0, 1] moved towards its own grey (its luma, clamped) just far enough to
    fit: the hue and the luma kept where the clamp would shift them."""
    grey = (image * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True).clamp(0, 1)
    chroma = image - grey
    room = torch.where(chroma > 0, (1 - grey) / chroma.clamp_min(1e-8), grey / (-chroma).clamp_min(1e-8))
    share = torch.where(chroma == 0, torch.ones_like(room), room).amin(1, keepdim=True).clamp(max=1)
    return (grey + share * chroma).clamp(0, 1)


def soft_knee(image: torch.Tensor, knee: float = 0.1) -> torch.Tensor:
    """Identity on [knee, 1 - knee], bent smoothly into (0, 1) beyond: the texture of the pixels
    past the range is kept, squeezed, where the clamp flattens it."""
    high, low = (
        1 - knee + knee * torch.tanh((image - 1 + knee) / knee),
        knee - knee * torch.tanh((knee - image) / knee),
    )
    return torch.where(image > 1 - knee, high, torch.where(image < knee, low, image))


# how the decoder's output is brought into [0, 1]: "clamped" is what every saved image and adain eval get
RANGE_MAPS = {
    "raw": lambda image: image,
    "clamped": lambda image: image.clamp(0, 1),
    "desaturated": desaturated,
    "soft knee 0.1": soft_knee,
}


def unsharp(amount: float, sigma: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The unsharp mask: the image plus ``amount`` times its difference from a Gaussian blur of
    ``sigma`` pixels, clamped: more contrast at the finest scales, the same for every style."""
    radius = int(3 * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).repeat(3, 1, 1, 1)

    def sharpened(image: torch.Tensor) -> torch.Tensor:
        image = image.clamp(0, 1)  # the saved image, sharpened
        blurred = F.pad(image, (radius,) * 4, mode="reflect")
        blurred = F.conv2d(blurred, kernel.view(3, 1, 1, -1), groups=3)
        blurred = F.conv2d(blurred, kernel.view(3, 1, -1, 1), groups=3)
        return (image + amount * (image - blurred)).clamp(0, 1)

    return sharpened


def recoloured(strength: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The clamped output moved ``strength`` of the way to itself recoloured to the style image's RGB
    mean and covariance (the ``palette`` option's ``toward_palette``): each style's own palette,
    where the decoder makes about the same amount of a colour whatever the style asks."""

    def recolour(image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return toward_palette(image.clamp(0, 1), palette_of(style), strength)

    return recolour


def clamp(args: argparse.Namespace) -> None:
    compare_maps(args, RANGE_MAPS)


def sharpen(args: argparse.Namespace) -> None:
    maps = {"clamped": RANGE_MAPS["clamped"]}
    maps.update({f"unsharp {a:g} sigma {s:g}": unsharp(a, s) for s in args.sigmas for a in args.amounts})
    compare_maps(args, maps)


def recolour(args: argparse.Namespace) -> None:
    maps: dict[str, Callable[..., torch.Tensor]] = {"clamped": RANGE_MAPS["clamped"]}
    maps.update({f"recoloured {k:g}": recoloured(k) for k in args.strengths})
    compare_maps(args, maps, with_style=set(maps) - {"clamped"})


def compare_maps(
    args: argparse.Namespace, maps: dict[str, Callable[..., torch.Tensor]], with_style: set[str] = frozenset()
) -> None:
    """For each decoder, the style loss per tap and the content loss of its output after each map
    (those named in ``with_style`` also given the style image)."""
    contents = sorted(p for p in Path(args.content_dir).iterdir() if p.is_file())[:: args.every]
    styles = sorted(p for p in Path(args.style_dir).iterdir() if p.is_file())[:: args.every]
    print(
        f"{len(contents)} contents x {len(styles)} styles at {args.size}²; style loss per tap ({', '.join(TAPS)})"
    )
    features = stats = style_images = None  # the encoder's, the same for every decoder: from the first
    for decoder in args.decoders:
        stylizer = Stylizer.from_pretrained(args.vgg, decoder, "cpu", precision="fp32")
        encode = stylizer.encode_fp32
        outside_share = []
        style_losses: dict[str, list[torch.Tensor]] = {name: [] for name in maps}
        content_losses: dict[str, list[float]] = {name: [] for name in maps}
        with torch.inference_mode():
            if features is None:
                features = [encode(images.load_square(p, args.size)) for p in contents]
                style_images = [images.load_square(p, args.size) for p in styles]
                stats = [[mean_std(t) for t in taps(encode, image)] for image in style_images]
            for style_image, style_stats in zip(style_images, stats, strict=True):
                for content_features in features:
                    t = adain_stats(content_features, *style_stats[-1])
                    output = stylizer.decode(t).float()
                    outside_share.append(((output < 0) | (output > 1)).float().mean())
                    for name, mapped in maps.items():
                        mapped_output = mapped(output, style_image) if name in with_style else mapped(output)
                        output_taps = taps(encode, mapped_output)
                        terms = style_loss_terms(output_taps, style_stats)
                        style_losses[name].append(torch.stack([m + s for m, s in terms]))
                        content_losses[name].append(content_loss(output_taps[-1], content_features).item())
        print(f"{decoder}: {torch.stack(outside_share).mean():.1%} of the pixels outside [0, 1]")
        for name, losses in style_losses.items():
            per_tap = torch.stack(losses).mean(0)
            content = sum(content_losses[name]) / len(content_losses[name])
            print(
                f"  {name}: {per_tap.sum():.3f} ({', '.join(f'{v:.3f}' for v in per_tap.tolist())}), content {content:.3f}"
            )


def gram_loss(output_taps: list[torch.Tensor], style_grams: list[torch.Tensor]) -> float:
    """Gatys et al.'s Gram-matrix loss at the same taps: the channels' co-variation, which neither
    AdaIN's loss nor polish's targets name."""
    return sum(
        ((gram(out) - ref) ** 2).mean().item() for out, ref in zip(output_taps, style_grams, strict=True)
    )


def gram(features: torch.Tensor) -> torch.Tensor:
    _, channels, height, width = features.shape
    flat = features.reshape(channels, height * width)
    return flat @ flat.T / (height * width)


def polish_curve(args: argparse.Namespace) -> None:
    contents = sorted(p for p in Path(args.content_dir).iterdir() if p.is_file())[:: args.every]
    styles = sorted(p for p in Path(args.style_dir).iterdir() if p.is_file())[:: args.every]
    stylizer = Stylizer.from_pretrained(args.vgg, args.decoder, "cpu", precision="fp32")
    encode = stylizer.encode_fp32
    print(f"{len(contents)} contents x {len(styles)} styles at {args.size}²")
    # step 0 is the plain pass whatever the setting: measured once, under the first setting
    Setting = tuple[float, float, str, int]
    settings: list[Setting] = [(args.style_weights[0], args.rates[0], args.arithmetic[0], 0)]
    settings += [
        (w, lr, a, n) for w in args.style_weights for lr in args.rates for a in args.arithmetic for n in args.steps if n
    ]  # fmt: skip
    rows: dict[Setting, list[tuple[float, ...]]] = {s: [] for s in settings}
    for style_path in styles:
        with torch.inference_mode():
            style_taps = taps(encode, images.load_square(style_path, args.size))
            style_stats, style_grams = [mean_std(t) for t in style_taps], [gram(t) for t in style_taps]
            del style_taps
        for content_path in contents:
            with torch.inference_mode():
                content_features = encode(images.load_square(content_path, args.size))
                output = stylizer.decode(adain_stats(content_features, *style_stats[-1])).float().clamp(0, 1)
            for weight, lr, arithmetic, n in rows:
                # bf16 as the pipeline polishes under --precision auto on a bf16 CPU: the plain encoder
                low, net = (torch.bfloat16, stylizer.encoder) if arithmetic == "bf16" else (None, encode)
                start = time.perf_counter()
                made = polish(net, output, content_features, style_stats, n, weight, lr=lr, dtype=low)
                seconds = time.perf_counter() - start
                with torch.inference_mode():
                    made_taps = taps(encode, made)
                    rows[weight, lr, arithmetic, n].append((
                        content_loss(made_taps[-1], content_features).item(),
                        sum(m + s for m, s in style_loss_terms(made_taps, style_stats)).item(),
                        gram_loss(made_taps, style_grams),
                        (made - output).abs().mean().item() * 255,
                        seconds,
                    ))  # fmt: skip
    print("style weight  rate  arithmetic  steps  content  style  gram  mean change (of 255)  seconds")
    for (weight, lr, arithmetic, n), measured in rows.items():
        means = [sum(column) / len(column) for column in zip(*measured, strict=True)]
        print(
            f"{weight:>12g} {lr:>5g} {arithmetic:>11} {n:>6} {means[0]:>8.3f} {means[1]:>6.3f} {means[2]:>5.3f}"
            f" {means[3]:>21.2f} {means[4]:>8.2f}"
        )


def plain_pass(
    stylizer: Stylizer, features: list[torch.Tensor], stats: list[list[tuple[torch.Tensor, torch.Tensor]]]
) -> dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]]:
    """(style, content) -> the relu4_1 (mean, std) of the output of one plain pass: the miss that
    feedback corrects."""
    made = {}
    for j, style_stats in enumerate(stats):
        for i, content_features in enumerate(features):
            output = stylizer.decode(adain_stats(content_features, *style_stats[-1])).clamp(0, 1)
            made[j, i] = mean_std(stylizer.encode_fp32(output))
    return made


def feedback(args: argparse.Namespace) -> None:
    contents = sorted(p for p in Path(args.content_dir).iterdir() if p.is_file())[:: args.every]
    styles = sorted(p for p in Path(args.style_dir).iterdir() if p.is_file())[:: args.every]
    settings = [tuple(float(v) for v in s.split(":")) for s in args.settings]
    stylizer = Stylizer.from_pretrained(args.vgg, args.decoder, "cpu", precision="fp32")
    encode = stylizer.encode_fp32
    print(f"{len(contents)} contents x {len(styles)} styles at {args.size}²")
    with torch.inference_mode():
        features = [encode(images.load_square(p, args.size)) for p in contents]
        stats = [[mean_std(t) for t in taps(encode, images.load_square(p, args.size))] for p in styles]
        made = plain_pass(stylizer, features, stats)
    given = torch.stack(
        [torch.cat([s[-1][0].flatten(), s[-1][1].flatten().log()]) for s in stats for _ in features]
    )
    got = torch.stack([torch.cat([m.flatten(), sd.flatten().log()]) for m, sd in made.values()])
    lines = {}
    for name, cols in (("means", slice(0, 512)), ("log stds", slice(512, None))):
        x, y = given[:, cols], got[:, cols]
        dx, dy = x - x.mean(0), y - y.mean(0)
        slope = (dx * dy).sum(0) / dx.pow(2).sum(0).clamp_min(1e-12)
        lines[name] = (y.mean(0) - slope * x.mean(0), slope)
        explained = 1 - (y - lines[name][0] - slope * x).pow(2).sum() / (y - x).pow(2).sum()
        print(
            f"relu4_1 {name}: output on target slope median {slope.median():.2f}; "
            f"the line explains {explained:.0%} of the miss"
        )

    def fixed(mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the lines foretell an output painted from (mean, std) makes: a miss known before
        painting, the same for every content."""
        (a, b), (c, d) = lines["means"], lines["log stds"]
        return (a + b * mean.flatten()).view_as(mean), (c + d * std.flatten().log()).exp().view_as(std)

    # each kind: its label and the miss it feeds back for (style j, content i)
    kinds = [("", lambda j, i, mean, std: made[j, i])]
    if args.fixed:
        kinds.append(("fixed: ", lambda j, i, mean, std: fixed(mean, std)))
    for n in args.preview:
        with torch.inference_mode():
            small = plain_pass(stylizer, [encode(images.load_square(p, n)) for p in contents], stats)
        kinds.append((f"preview {n}: ", lambda j, i, mean, std, small=small: small[j, i]))
    for label, miss_of in kinds:
        for eta, alpha in settings:
            rows = []
            with torch.inference_mode():
                for j, style_stats in enumerate(stats):
                    mean, std = style_stats[-1]
                    for i, content_features in enumerate(features):
                        miss = miss_of(j, i, mean, std)
                        t = adain_stats(content_features, *feedback_targets((mean, std), miss, eta))
                        output = stylizer.decode(alpha * t + (1 - alpha) * content_features).clamp(0, 1)
                        out_taps = taps(encode, output)
                        per_tap = torch.stack([m + s for m, s in style_loss_terms(out_taps, style_stats)])
                        content = content_loss(out_taps[-1], content_features)
                        rows.append(torch.cat([content.view(1), per_tap]))
            row = torch.stack(rows).mean(0)
            print(
                f"{label}eta {eta:g} alpha {alpha:g}: content {row[0]:.3f} style {row[1:].sum():.3f} "
                f"({', '.join(f'{v:.3f}' for v in row[1:].tolist())})"
            )


def energy(args: argparse.Namespace) -> None:
    import csv

    from safetensors.torch import load_file

    from adain.features import StyleStats, style_energy

    cache = load_file(args.style_cache)
    trained = style_energy(StyleStats(cache["mean"].float(), cache["std"].float()))
    losses: dict[str, list[float]] = {}
    with open(args.pairs_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["method"] == "adain":
                losses.setdefault(row["style"], []).append(float(row["style_loss"]))
    stylizer = Stylizer.from_pretrained(args.vgg, None, "cpu", precision="fp32")
    rows = []
    for name, values in losses.items():
        means = tap_means(stylizer, images.load_square(Path(args.style_dir) / name, args.size))
        mean = means[None, None]
        style = float(style_energy(StyleStats(mean, mean))[0])
        rows.append((sum(values) / len(values), style, float((trained < style).float().mean()), name))
    print(f"{'style':<36} style loss  energy  percentile among {len(trained)} training styles")
    for loss, style, share, name in sorted(rows):
        print(f"{name:<36} {loss:10.3f} {style:7.2f} {share:8.0%}")
    pairs = torch.tensor([(loss, style) for loss, style, *_ in rows]).T
    print(f"correlation of style loss and energy over {len(rows)} styles: {torch.corrcoef(pairs)[0, 1]:.2f}")
    quantiles = ", ".join(f"{q:.0%} {trained.quantile(q):.2f}" for q in (0.1, 0.5, 0.9, 0.99))
    print(f"training styles' energy: {quantiles}")
    top = trained >= trained.quantile(0.9)
    shares = ", ".join(f"{(trained[top] ** b).sum() / (trained**b).sum():.0%} at {b:g}" for b in (0.5, 1, 2))
    print(f"the top tenth of the training styles' share of the draws with --bold-styles B: {shares}")
    if args.boldest:
        paths = images.find_images(args.links, recursive=True)
        if len(paths) != len(trained):
            raise SystemExit(f"{args.links} has {len(paths)} images, the cache {len(trained)} styles")
        out, linked = Path(args.into), set()
        out.mkdir(parents=True, exist_ok=True)
        for i in trained.argsort(descending=True).tolist():
            if len(linked) == args.boldest:
                break
            real = paths[i].resolve()
            if (args.only and paths[i].parent.name != args.only) or real in linked:
                continue
            linked.add(real)
            (out / real.name).unlink(missing_ok=True)
            (out / real.name).symlink_to(real)
            print(f"  {real.name}: energy {trained[i]:.2f}")


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
    known = sub.add_parser("predict", help="how much of each tap's style statistics relu4_1's predict")
    known.add_argument("--ridge", type=float, nargs="+", default=[1e2, 1e3, 1e4])
    known.add_argument("--steps", type=int, default=3000, help="the MLP's training steps")
    known.add_argument(
        "--styles",
        help="also these style images (unseen): the style loss's terms of outputs with the predicted statistics",
    )
    known.set_defaults(run=predict)

    def maps_parser(
        name: str, run: Callable[[argparse.Namespace], None], text: str
    ) -> argparse.ArgumentParser:
        """A mode of ``compare_maps``: the pairs of two folders, each decoder's output mapped."""
        mode = sub.add_parser(name, help=text)
        mode.add_argument("content_dir")
        mode.add_argument("style_dir")
        mode.add_argument("decoders", nargs="+")
        mode.add_argument("--every", type=int, default=1, help="every K-th content and style (default all)")
        mode.set_defaults(run=run)
        return mode

    maps_parser("clamp", clamp, "how much the clamp of the saved image costs each decoder's style loss")
    sharp = maps_parser("sharpen", sharpen, "what an unsharp mask of the output does to both losses")
    sharp.add_argument("--amounts", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    sharp.add_argument("--sigmas", type=float, nargs="+", default=[0.7, 1.5], help="the blur's, in pixels")
    recol = maps_parser(
        "recolour", recolour, "what recolouring the output to the style's palette does to both losses"
    )
    recol.add_argument(
        "--strengths", type=float, nargs="+", default=[0.5, 1.0], help="0: none, 1: all the way"
    )
    fed = sub.add_parser("feedback", help="the relu4_1 statistics the decoder misses, and one feedback pass")
    fed.add_argument("content_dir")
    fed.add_argument("style_dir")
    fed.add_argument("decoder")
    fed.add_argument("--every", type=int, default=1, help="every K-th content and style (default all)")
    fed.add_argument("--settings", nargs="+", default=["0:1", "0.5:1"], help="ETA:ALPHA (default 0:1 0.5:1)")
    fed.add_argument(
        "--fixed",
        action="store_true",
        help="also each setting with the miss foretold by the lines, not measured",
    )
    fed.add_argument(
        "--preview",
        type=int,
        nargs="+",
        default=[],
        metavar="N",
        help="also each setting with the miss measured on a first pass at N px",
    )
    fed.set_defaults(run=feedback)
    polished = sub.add_parser("polish", help="what polish steps do to the losses, a Gram loss and the pixels")
    polished.add_argument("content_dir")
    polished.add_argument("style_dir")
    polished.add_argument("decoder")
    polished.add_argument("--every", type=int, default=1, help="every K-th content and style (default all)")
    polished.add_argument(
        "--steps", type=int, nargs="+", default=[1, 3, 10], help="step counts (default 1 3 10)"
    )
    polished.add_argument(
        "--style-weights", type=float, nargs="+", default=[POLISH_STYLE_WEIGHT],
        help=f"polish's style weights, the content's being 1 (default {POLISH_STYLE_WEIGHT:g}, as --polish)",
    )  # fmt: skip
    polished.add_argument(
        "--rates", type=float, nargs="+", default=[POLISH_LR], help=f"Adam's rates (default {POLISH_LR})"
    )
    polished.add_argument(
        "--arithmetic", nargs="+", choices=("fp32", "bf16"), default=["fp32"],
        help="the steps' arithmetic (default fp32; bf16: as --precision auto on a bf16 CPU); losses in fp32",
    )  # fmt: skip
    polished.set_defaults(run=polish_curve)
    bold = sub.add_parser(
        "energy", help="each evaluated style's loss against its energy; the boldest training styles"
    )
    bold.add_argument("pairs_csv", help="an adain eval pairs.csv")
    bold.add_argument("style_dir", help="the style images it names")
    bold.add_argument(
        "--boldest", type=int, default=0, help="link this many of the most energetic training styles"
    )
    bold.add_argument("--links", help="the style folder the cache was built from (its rows are its images)")
    bold.add_argument("--only", help="only training styles in this subfolder of --links (e.g. train512)")
    bold.add_argument("--into", help="the folder for the links")
    bold.set_defaults(run=energy)
    args = parser.parse_args()
    if args.mode in ("outside", "predict", "energy") and not args.style_cache:
        parser.error(f"{args.mode} needs --style-cache")
    if args.mode == "energy" and args.boldest and not (args.links and args.into):
        parser.error("--boldest needs --links and --into")  # before the styles are encoded
    args.run(args)


if __name__ == "__main__":
    main()
