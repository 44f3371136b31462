"""Colour statistics of images and the transforms between them: the paper's colour preservation
(the style recoloured to the content's RGB mean and covariance) and the ``palette`` option (the
output moved towards the style's)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

Palette = tuple[Tensor, Tensor]  # an image's RGB mean (3, 1) and covariance (3, 3)


def palette_of(img: Tensor, eps: float = 1e-5, weight: Tensor | None = None) -> Palette:
    """The RGB mean (3, 1) and covariance (3, 3) of a (1, 3, H, W) image, in float64; with
    ``weight`` (H x W values, not all 0), of its pixels counted that much each (a mask region's)."""
    pixels = img[0].reshape(3, -1).double()
    if weight is None:
        share = torch.full((pixels.shape[1],), 1 / pixels.shape[1], dtype=torch.float64, device=img.device)
    else:
        share = weight.reshape(-1).to(img.device, torch.float64)
        share = share / share.sum()
    mu = pixels @ share.unsqueeze(1)
    centred = pixels - mu
    cov = (centred * share) @ centred.T + eps * torch.eye(3, dtype=torch.float64, device=img.device)
    return mu, cov


def blend_palettes(palettes: Sequence[Palette], shares: Sequence[float]) -> Palette:
    """The palette of the styles' pixels pooled in these shares (a mixture's mean and covariance)."""
    mu = sum(share * m for (m, _), share in zip(palettes, shares, strict=True))
    second = sum(share * (c + m @ m.T) for (m, c), share in zip(palettes, shares, strict=True))
    return mu, second - mu @ mu.T  # type: ignore[operator]


def colour_transform(source: Palette, target: Palette, eps: float = 1e-5) -> Tensor:
    """The 3x3 matrix C_t^(1/2) C_s^(-1/2) that takes colours centred on ``source``'s mean to
    ``target``'s covariance (float64)."""

    def power_of(cov: Tensor, power: float) -> Tensor:
        values, vectors = torch.linalg.eigh(cov.double())
        return vectors @ torch.diag(values.clamp_min(eps) ** power) @ vectors.T

    return power_of(target[1].to(source[1].device), 0.5) @ power_of(source[1], -0.5)


def recolor(source: Tensor, palette: Palette, eps: float = 1e-5, weight: Tensor | None = None) -> Tensor:
    """``source`` recoloured so its RGB mean and covariance are ``palette``'s (after Gatys et al.
    2016): x -> C_t^(1/2) C_s^(-1/2) (x - mu_s) + mu_t, clamped to [0, 1]; with ``weight``, the map
    that gives the pixels so weighted that palette."""
    mu_s, cov_s = palette_of(source, eps, weight)
    mu_t = palette[0].to(source.device, torch.float64)
    transform = colour_transform((mu_s, cov_s), palette, eps)
    pixels = source[0].reshape(3, -1).double()
    out = transform @ (pixels - mu_s) + mu_t
    return out.reshape_as(source[0]).unsqueeze(0).clamp(0, 1).to(source.dtype)


def match_color(source: Tensor, target: Tensor, eps: float = 1e-5) -> Tensor:
    """``source`` recoloured to ``target``'s RGB mean and covariance: the paper's colour preservation
    when the source is the style and the target the content."""
    return recolor(source, palette_of(target, eps), eps)


def toward_palette(image: Tensor, palette: Palette, share: float, weight: Tensor | None = None) -> Tensor:
    """A (1, 3, H, W) output clamped to [0, 1] and moved ``share`` of the way to itself recoloured
    to ``palette`` (``palette``: README, "Palette"); with ``weight``, by the map measured on the
    pixels so weighted (``recolor``)."""
    image = image.float().clamp(0, 1)
    return torch.lerp(image, recolor(image, palette, weight=weight), share)


def toward_palettes_in_regions(
    image: Tensor, palettes: Sequence[Palette], white: Tensor, share: float
) -> Tensor:
    """``toward_palette`` for a mask's two regions: where the mask ``white`` (1, 1, H, W) in [0, 1] is
    white, towards the first palette by the map measured on that region, where black towards the
    second; grey levels blend the two. A region with no pixels keeps its colours."""
    image = image.float().clamp(0, 1)
    out = torch.zeros_like(image)
    for weight, palette in zip((white, 1 - white), palettes, strict=True):
        weight = weight.to(image.device, image.dtype)
        out += weight * (image if weight.sum() < 1 else toward_palette(image, palette, share, weight))
    return out
