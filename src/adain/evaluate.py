"""The paper's quantitative evaluation (its Fig. 3): content and style loss of stylized images.

For every content x style pair, measured with the normalised VGG encoder:
    content loss = MSE(f(output), f(content))                at relu4_1
    style loss   = sum over relu1_1..relu4_1 of MSE of channel means + MSE of channel stds
(its eight terms are kept too, as ``style_relu1_1_mean`` ... ``style_relu4_1_std``, to show at which
depth an output misses its style, and whether in level or in contrast).
Methods: ``adain`` (the stylizer's decoder), ``gatys`` (optimisation, see ``gatys.py``), and the
paper's reference points ``content`` (the content image itself) and ``style`` (the style image itself).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from . import files, images
from .colour import palette_of, toward_palette
from .errors import AdainError, ImageError
from .gatys import gatys, polish, polish_targets
from .losses import content_loss, style_loss_terms, sum_of_terms
from .nets import TAPS, Stats, mean_std, taps
from .plots import plot_summary
from .stylize import StyleCode, Stylizer

METHODS = ("adain", "gatys", "content", "style")


@dataclass
class PairResult:
    method: str
    content: str
    style: str
    content_loss: float
    style_loss: float
    seconds: float
    # the style loss's terms by name (STYLE_TERMS), summing to style_loss
    style_terms: dict[str, float] = field(default_factory=dict)


STYLE_TERMS = tuple(f"style_{layer}_{kind}" for layer in TAPS for kind in ("mean", "std"))


def _load_readable(paths: Sequence[Path], size: int, max_pixels: int, role: str) -> dict[Path, Tensor]:
    """``load_square`` of each path; an unreadable file is left out with a warning (the pair counts
    in the report say how many pairs were measured), but not all of them."""
    loaded = {}
    for path in paths:
        try:
            loaded[path] = images.load_square(path, size, max_pixels)
        except ImageError as exc:
            warnings.warn(f"skipping unreadable {role} image: {exc}", stacklevel=3)
    if not loaded:
        raise AdainError(f"none of the {len(paths)} {role} images could be read")
    return loaded


@torch.inference_mode()
def losses(
    stylizer: Stylizer, output: Tensor, content_feat: Tensor, style_stats: Sequence[Stats]
) -> tuple[float, float, dict[str, float]]:
    """(content loss, style loss, the style loss's terms by name) of ``output`` (1, 3, H, W) in
    [0, 1] against the content's relu4_1 features and the style's (mean, std) at relu1_1..relu4_1
    (all from ``stylizer.encode_fp32``)."""
    out_taps = taps(stylizer.encode_fp32, output.to(stylizer.device))
    terms = style_loss_terms(out_taps, style_stats)
    named = dict(zip(STYLE_TERMS, (term.item() for pair in terms for term in pair), strict=True))
    return content_loss(out_taps[-1], content_feat).item(), sum_of_terms(terms).item(), named


def evaluate(
    stylizer: Stylizer,
    contents: Sequence[Path],
    styles: Sequence[Path],
    methods: Sequence[str] = ("adain",),
    size: int = 256,
    progress: bool = True,
    gatys_iters: int = 200,
    outputs_dir: Path | None = None,
    alpha: float = 1.0,
) -> list[PairResult]:
    """Every method on every content x style pair, images centre-cropped to ``size`` squares.

    Each image is encoded once for the loss network (and, for styles, the AdaIN statistics), and
    each content once for all the styles it is painted in (``Stylizer.reusing_content``);
    ``outputs_dir`` keeps the stylized images as ``<method>/<content>__<style>.png``; ``alpha`` is
    the adain method's style strength.
    """
    from tqdm import tqdm

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise AdainError(f"unknown method {unknown[0]!r} (choose from {', '.join(METHODS)})")
    if not contents or not styles:
        raise AdainError("evaluation needs at least one content and one style image")
    if size < 16:
        raise AdainError(f"--size must be at least 16, got {size}")
    device = stylizer.device
    content_tensors = _load_readable(contents, size, stylizer.options.max_pixels, "content")
    style_tensors = _load_readable(styles, size, stylizer.options.max_pixels, "style")
    contents, styles = list(content_tensors), list(style_tensors)
    with torch.inference_mode():
        content_feats, content_stats = {}, {}
        for c, t in content_tensors.items():
            feats = taps(stylizer.encode_fp32, t.to(device))
            content_feats[c], content_stats[c] = feats[-1], [mean_std(f) for f in feats]
        style_stats = {
            s: [mean_std(f) for f in taps(stylizer.encode_fp32, t.to(device))]
            for s, t in style_tensors.items()
        }
    # the last tap is relu4_1, the encoder's output: AdaIN's style statistics come from it
    style_codes = {s: StyleCode(*stats[-1], s.stem) for s, stats in style_stats.items()}
    if stylizer.options.decoder_match:  # and the decoder's own statistics of each style, as it measures them
        measured = {s: stylizer.encode_style(style_tensors[s]) for s in style_codes}
        style_codes = {
            s: replace(code, decoder=measured[s].decoder, decoder_covariance=measured[s].decoder_covariance)
            for s, code in style_codes.items()
        }
    results = []
    pairs = [(m, c, s) for m in methods for c in contents for s in styles]
    # content by content, so that each content is encoded once for all the styles it is painted in
    # the pipeline itself takes batches unpolished; the polish steps follow it here
    painter, steps = stylizer.with_options(polish=0, palette=0), stylizer.options.polish
    palette = stylizer.options.palette * alpha
    weight = stylizer.options.polish_style_weight
    steps_encoder, steps_dtype = stylizer.polish_arithmetic
    with painter.reusing_content():
        for method, c, s in tqdm(pairs, desc="eval", unit="pair", disable=not progress, dynamic_ncols=True):
            content, style = content_tensors[c], style_tensors[s]
            start = time.perf_counter()
            if method == "adain":
                output = painter.stylize_tensor(content, [style_codes[s]], alpha)
                if palette:  # as ``Stylizer.__call__`` recolours, then polishes
                    output = toward_palette(output, palette_of(style), palette)
                if steps:
                    targets = polish_targets([style_stats[s]], [1.0], alpha, content_stats[c])
                    output = polish(
                        steps_encoder, output, content_feats[c], targets, steps, weight, dtype=steps_dtype
                    )
                output = output.cpu()
            elif method == "gatys":
                output, _ = gatys(stylizer.encode_fp32, content.to(device), style.to(device), gatys_iters)
                output = output.cpu()
            else:
                output = content if method == "content" else style
            seconds = time.perf_counter() - start
            loss_c, loss_s, terms = losses(stylizer, output, content_feats[c], style_stats[s])
            results.append(PairResult(method, c.name, s.name, loss_c, loss_s, seconds, terms))
            if outputs_dir is not None and method in ("adain", "gatys"):
                path = Path(outputs_dir) / method / f"{c.stem}__{s.stem}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                images.save_image(images.to_pil(output), path, overwrite=True)
    return results


def summarize(results: Sequence[PairResult]) -> dict[str, dict[str, float]]:
    """Per method: mean and standard deviation of both losses, pair count, total seconds, and the
    mean of each of the style loss's terms (``style_terms``) where the results carry them."""
    summary = {}
    for method in dict.fromkeys(r.method for r in results):
        rows = [r for r in results if r.method == method]
        c = [r.content_loss for r in rows]
        s = [r.style_loss for r in rows]
        summary[method] = {
            "content_loss": statistics.fmean(c),
            "content_loss_std": statistics.pstdev(c),
            "style_loss": statistics.fmean(s),
            "style_loss_std": statistics.pstdev(s),
            "n_pairs": len(rows),
            "seconds": sum(r.seconds for r in rows),
        }
        if all(r.style_terms for r in rows):
            summary[method]["style_terms"] = {
                name: statistics.fmean(r.style_terms[name] for r in rows) for name in STYLE_TERMS
            }
    return summary


REPORT_FILES = ("pairs.csv", "summary.json", "losses.png")


def write_report(results: Sequence[PairResult], out_dir: str | Path, meta: dict | None = None) -> dict:
    """``pairs.csv``, ``summary.json`` and ``losses.png`` (if matplotlib is installed) in ``out_dir``,
    each written whole or not at all."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = io.StringIO(newline="")
    columns = [name for name in asdict(results[0]) if name != "style_terms"]
    writer = csv.DictWriter(table, fieldnames=columns + list(STYLE_TERMS), restval="")
    writer.writeheader()
    writer.writerows({**{name: getattr(r, name) for name in columns}, **r.style_terms} for r in results)
    files.write_text(out_dir / "pairs.csv", table.getvalue())
    summary = summarize(results)
    files.write_text(
        out_dir / "summary.json", json.dumps({"methods": summary, **(meta or {})}, indent=2) + "\n"
    )
    plot_summary(summary, out_dir / "losses.png")
    return summary
