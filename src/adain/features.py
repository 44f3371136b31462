"""Encoder features of the training images, computed once and kept on disk (``--feature-cache``).

Two of a training step's four network passes only encode the batch's content and style crops,
without gradients. With the cache, each content image's relu4_1 features are computed once at the
load size and cropped in feature space (a ``crop_size`` px crop is ``crop_size / 8`` positions).
Each style image is encoded once too, and summarised by the mean and std at relu1_1..relu4_1 of
``STYLE_CROPS`` crops of ``crop_size`` px, taken in feature space at each tap (the paper's targets,
the style crop's statistics; issue 14 measured them the better objective), or with
``--style-targets whole`` of the whole image (what inference uses). With ``--style-scales`` the
crops are cut at several scales of each style image (e.g. its short side at 512 and at 256 px: the
same painting's strokes coarse and fine). With ``--no-style-upscale`` a style image smaller than a
scale stays at its own size (e.g. a 256 px set beside a 512 px one, its strokes sharp); with
``--jitter-styles turn`` each crop is turned and mirrored at random (``turn+hue``: and recoloured),
more styles than paintings. A step then pays for the decoder, the loss network on its
output and the two backward passes.

A cache file is named by a key over the format, the encoder, the load size, the style crops and the
bytes of every image; anything else (other images, another encoder, a file cut short) is rebuilt,
never used.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from . import files, images
from .devices import release_freed_memory
from .errors import AdainError, ImageError
from .nets import TAP_CHANNELS, Stats, mean_std
from .tiling import STRIDE

FORMAT = "adain-features-2"  # 2: style statistics per crop, (N, K, 960)
TAP_STRIDES = (1, 2, 4, STRIDE)  # image pixels per position of each tap, along each side
STYLE_CROPS = 16  # style crops kept per style image: 8,304 targets for train512's 519 styles
STYLE_WIDTH = sum(TAP_CHANNELS)  # a style's statistics: the four taps' channels end to end
Encode = Callable[[Tensor], Tensor]  # (1, 3, H, W) image -> relu4_1 features
Taps = Callable[[Tensor], list[Tensor]]  # (1, 3, H, W) image -> the four style taps
# (1, 512, h, w) relu4_1 features -> (mean, std), each (D,): a decoder's chosen ReLUs decoding them
DecoderStatistics = Callable[[Tensor], tuple[Tensor, Tensor]]


def cache_key(paths: Sequence[Path], kind: str, encoder_id: str, load_size: int, crops: str = "") -> str:
    """A digest of everything the cached features depend on (``crops``: how styles were cropped)."""
    digest = hashlib.sha256(f"{FORMAT}|{kind}|{encoder_id}|{load_size}|{crops}".encode())
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:24]


@dataclass
class ContentFeatures:
    """relu4_1 features (512, h, w) of each readable content image, at the load size."""

    features: list[Tensor]
    skipped: int = 0

    def crops(self, indices: Sequence[int], size: int, generator: torch.Generator) -> Tensor:
        """A random ``size`` x ``size`` window of each of ``indices``' feature maps, as a batch."""
        out = []
        for i in indices:
            feat = self.features[i]
            top = int(torch.randint(feat.shape[1] - size + 1, (1,), generator=generator))
            left = int(torch.randint(feat.shape[2] - size + 1, (1,), generator=generator))
            out.append(feat[:, top : top + size, left : left + size])
        return torch.stack(out)


@dataclass
class StyleStats:
    """Mean and std at the four style taps of K crops (or, K = 1, the whole) of each readable style
    image, (N, K, 960) each."""

    mean: Tensor
    std: Tensor
    skipped: int = 0

    def joined(self, other: StyleStats) -> StyleStats:
        """Each style's statistics with ``other``'s (of the same images, one per image) after them."""
        if other.mean.shape[:2] != (len(self.mean), 1) or self.mean.shape[1] != 1:
            raise AdainError("decoder match targets need whole-image style targets, one per style image")
        return StyleStats(
            torch.cat([self.mean, other.mean], -1), torch.cat([self.std, other.std], -1), self.skipped
        )


def crop_corners(height: int, width: int, crop_size: int, count: int, seed: int) -> list[tuple[int, int]]:
    """``count`` seeded (top, left) corners of ``crop_size`` px crops inside a ``height`` x ``width``
    image, on multiples of 8 so that every tap's crop starts on one of its positions."""
    generator = torch.Generator().manual_seed(seed)
    rows, cols = (max(0, extent - crop_size) // STRIDE + 1 for extent in (height, width))
    return [(STRIDE * int(torch.randint(rows, (1,), generator=generator)),
             STRIDE * int(torch.randint(cols, (1,), generator=generator))) for _ in range(count)]  # fmt: skip


def end_to_end(stats: Sequence[Stats]) -> tuple[Tensor, Tensor]:
    """Several layers' channel (mean, std) as two vectors (D,), the layers' channels end to end:
    how the cache keeps a style's statistics."""
    return torch.cat([m.flatten() for m, _ in stats]), torch.cat([s.flatten() for _, s in stats])


def tap_statistics(
    style_taps: Sequence[Tensor], corners: Sequence[tuple[int, int]] | None, crop_size: int
) -> tuple[Tensor, Tensor]:
    """(mean, std), each (K, 960): the statistics of each crop at ``corners`` of the four taps of one
    image, cut from the taps (in feature space), or with ``corners`` None of the whole taps (K = 1)."""
    means, stds = [], []
    for top, left in corners or [(0, 0)]:
        crop = []
        for tap, stride in zip(style_taps, TAP_STRIDES, strict=True):
            if corners is not None:
                row, col, size = top // stride, left // stride, crop_size // stride
                tap = tap[..., row : row + size, col : col + size]
            crop.append(mean_std(tap.float()))
        mean, std = end_to_end(crop)
        means.append(mean)
        stds.append(std)
    return torch.stack(means), torch.stack(stds)


def hue_rotation(angle: float) -> Tensor:
    """The 3 x 3 matrix that turns RGB colours by ``angle`` radians about the grey axis: the same
    brightness pattern in another palette."""
    axis = torch.full((3,), 3**-0.5, dtype=torch.float64)
    cross = torch.tensor([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], dtype=torch.float64) * 3**-0.5
    angle_t = torch.tensor(angle, dtype=torch.float64)
    turn = torch.cos(angle_t) * torch.eye(3, dtype=torch.float64) + torch.sin(angle_t) * cross
    return (turn + (1 - torch.cos(angle_t)) * torch.outer(axis, axis)).float()


def jittered(crop: Tensor, generator: torch.Generator, kind: str = "turn") -> Tensor:
    """A (1, 3, h, w) crop varied at random as ``kind`` (one of ``defaults.STYLE_JITTERS``) says:
    ``turn``, turned by a multiple of 90 degrees and mirrored or not; ``turn+hue``, also with
    probability a half hue-rotated by a random angle; ``hue``, only that recolouring, the strokes
    as painted (session 19: the palettes alone, for the colour channel the canonical styles need
    and the training styles rarely have); ``half-turn``, only turned by 0 or 180 degrees,
    never mirrored, so every stroke keeps its orientation (a painting of one stroke direction lost
    1.5x with ``turn``, training-recipes.md, session 15). A variant of the painting the decoder has
    not seen, with the strokes in other directions (and other colours)."""
    turns, mirror, recolour = (int(v) for v in torch.randint(0, 4, (3,), generator=generator))
    if kind == "hue":
        turns, mirror = 0, 0
    if kind == "half-turn":
        turns, mirror = turns // 2 * 2, 0
    crop = torch.rot90(crop, turns, dims=(-2, -1))
    if mirror % 2:
        crop = crop.flip(-1)
    if kind in ("turn+hue", "hue") and recolour % 2:
        angle = float(torch.rand((), generator=generator)) * 2 * torch.pi
        crop = torch.einsum("ij,bjhw->bihw", hue_rotation(angle), crop).clamp(0, 1)
    return crop


def _readable(
    paths: Sequence[Path], sizes: Sequence[int], min_short_side: int | None = None
) -> Iterator[tuple[int, list[Tensor]]]:
    """(index, image tensors at each short side in ``sizes``) of each file that reads; the others
    warned once each. With ``min_short_side``, an image is scaled up only as far as that short side."""
    for i, path in enumerate(paths):
        try:
            img = images.flatten_alpha(images.load_image(path))
            short, wanted = min(img.size), sizes
            if min_short_side is not None:
                wanted = [size if size <= short else max(short, min_short_side) for size in sizes]
            scaled = [images.to_tensor(images.resize_short_side(img, size)) for size in wanted]
        except ImageError as exc:
            warnings.warn(f"skipping unreadable training image: {exc}", stacklevel=3)
            continue
        yield i, scaled
        # the encodings of images of many sizes leave holes in the heap that a trainer's kept
        # thresholds never hand back: two runs caching side by side grew to 13-20 GB (session 35)
        release_freed_memory()


def _progress(total: int, what: str, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"caching {what}", unit="img", disable=not show, dynamic_ncols=True)


@torch.no_grad()
def encode_contents(
    paths: Sequence[Path], load_size: int, encode: Encode, progress: bool = False
) -> ContentFeatures:
    found: list[Tensor] = []
    bar = _progress(len(paths), "content features", progress)
    for _, (x,) in _readable(paths, [load_size]):
        found.append(encode(x).squeeze(0).to(torch.bfloat16).cpu().contiguous())
        bar.update(1)
    bar.close()
    return ContentFeatures(found, len(paths) - len(found))


@torch.no_grad()
def encode_styles(
    paths: Sequence[Path], load_size: int, encode_taps: Taps, crop_size: int | None = None,
    progress: bool = False, scales: Sequence[int] = (), upscale: bool = True, jitter: str = "",
) -> StyleStats:  # fmt: skip
    """Statistics of ``STYLE_CROPS`` crops of each style image (seeded by its place in ``paths``),
    or with ``crop_size`` None of the whole image; with ``scales`` (short sides), as many crops at
    each of them, K = ``STYLE_CROPS`` x their number, instead of at ``load_size``. Without
    ``upscale``, an image smaller than a size stays at its own (scaled up to a crop if it is smaller).
    With ``jitter`` (one of ``defaults.STYLE_JITTERS``) each crop is cut from the image and ``jittered`` before it
    is encoded (16 small encodings an image instead of one)."""
    means, stds = [], []
    bar = _progress(len(paths), "style statistics", progress)
    for i, scaled in _readable(paths, scales or [load_size], None if upscale else crop_size or 1):
        for k, x in enumerate(scaled):
            seed = i + k * len(paths)  # the first scale: the crops a one-scale cache cuts at that size
            corners = None if crop_size is None else crop_corners(*x.shape[-2:], crop_size, STYLE_CROPS, seed)
            if jitter and corners is not None:
                generator = torch.Generator().manual_seed(seed)
                crops = [jittered(x[..., top : top + crop_size, left : left + crop_size], generator, jitter)
                         for top, left in corners]  # fmt: skip
                stats = [tap_statistics(encode_taps(crop), None, 0) for crop in crops]
                mean, std = (torch.cat(part) for part in zip(*stats, strict=True))
            else:
                mean, std = tap_statistics(encode_taps(x), corners, crop_size or 0)
            # kept on the CPU, where the batches are drawn, whatever device encoded them
            means.append(mean.cpu())
            stds.append(std.cpu())
        bar.update(1)
    bar.close()
    if not means:
        raise AdainError("none of the style images could be read")
    per_image = len(scales) or 1
    mean, std = (
        torch.stack(part).view(-1, per_image * part[0].shape[0], part[0].shape[1]) for part in (means, stds)
    )
    return StyleStats(mean, std, len(paths) - len(mean))


@torch.no_grad()
def decoder_styles(
    paths: Sequence[Path], load_size: int, encode: Encode, measure: DecoderStatistics,
    progress: bool = False, upscale: bool = True,
) -> StyleStats:  # fmt: skip
    """What a decoder's ReLUs hold for each whole style image: ``measure`` of its relu4_1 features
    (N, 1, D), the image read as ``encode_styles`` reads it for whole-image targets."""
    means, stds = [], []
    bar = _progress(len(paths), "decoder statistics", progress)
    for _, (x,) in _readable(paths, [load_size], None if upscale else 1):
        mean, std = measure(encode(x))
        means.append(mean.float().cpu())
        stds.append(std.float().cpu())
        bar.update(1)
    bar.close()
    if not means:
        raise AdainError("none of the style images could be read")
    return StyleStats(torch.stack(means)[:, None], torch.stack(stds)[:, None], len(paths) - len(means))


def _load(path: Path, key: str) -> dict[str, Tensor] | None:
    """The tensors of a cache file made with ``key``, or None if it is missing or does not check out."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT or meta.get("key") != key:
                return None
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception:
        warnings.warn(f"{path}: a damaged feature cache, rebuilding it", stacklevel=3)
        return None
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        warnings.warn(f"{path}: non-finite values in the feature cache, rebuilding it", stacklevel=3)
        return None
    return {**tensors, "skipped": torch.tensor(int(meta.get("skipped", "0")))}


def _save(path: Path, key: str, tensors: dict[str, Tensor], skipped: int) -> None:
    from safetensors.torch import save_file

    try:
        with files.replacing(path) as tmp:
            save_file(tensors, str(tmp), metadata={"format": FORMAT, "key": key, "skipped": str(skipped)})
    except OSError as exc:  # a cache that cannot be written only costs a rebuild next time
        warnings.warn(f"cannot write the feature cache {path}: {exc.strerror or exc}", stacklevel=3)


def cached_contents(paths: Sequence[Path], load_size: int, encode: Encode, encoder_id: str,
                    cache_dir: Path, progress: bool = False) -> ContentFeatures:  # fmt: skip
    key = cache_key(paths, "content", encoder_id, load_size)
    path = Path(cache_dir) / f"content-{key}.safetensors"
    found = _load(path, key)
    if found is not None:
        skipped = int(found.pop("skipped"))
        return ContentFeatures([found[str(i)] for i in range(len(found))], skipped)
    built = encode_contents(paths, load_size, encode, progress)
    _save(path, key, {str(i): f for i, f in enumerate(built.features)}, built.skipped)
    return built


def cached_styles(paths: Sequence[Path], load_size: int, encode_taps: Taps, encoder_id: str,
                  cache_dir: Path, crop_size: int | None = None, progress: bool = False,
                  scales: Sequence[int] = (), upscale: bool = True, jitter: str = "") -> StyleStats:  # fmt: skip
    crops = "whole" if crop_size is None else f"{STYLE_CROPS} crops of {crop_size}"
    if scales:
        crops += f" at short sides {','.join(map(str, scales))}"
    if not upscale:
        crops += ", never upscaled"
    if jitter:
        crops += f", jittered by {jitter}"
    key = cache_key(paths, "style", encoder_id, load_size, crops)
    return _cached_stats(Path(cache_dir) / f"style-{key}.safetensors", key,
                         lambda: encode_styles(paths, load_size, encode_taps, crop_size, progress, scales, upscale, jitter))  # fmt: skip


def cached_decoder_styles(paths: Sequence[Path], load_size: int, encode: Encode, measure: DecoderStatistics,
                          model_id: str, cache_dir: Path, progress: bool = False, upscale: bool = True) -> StyleStats:  # fmt: skip
    """``decoder_styles``, from the cache or measured now and kept; ``model_id`` names the encoder,
    the decoder and its chosen ReLUs (any change is another cache file)."""
    key = cache_key(paths, "decoder", model_id, load_size, "whole" + ("" if upscale else ", never upscaled"))
    return _cached_stats(Path(cache_dir) / f"decoder-{key}.safetensors", key,
                         lambda: decoder_styles(paths, load_size, encode, measure, progress, upscale))  # fmt: skip


def _cached_stats(path: Path, key: str, build: Callable[[], StyleStats]) -> StyleStats:
    found = _load(path, key)
    if found is not None:
        return StyleStats(found["mean"], found["std"], int(found["skipped"]))
    built = build()
    _save(path, key, {"mean": built.mean, "std": built.std}, built.skipped)
    return built


class CachedBatches(Iterator[tuple[Tensor, Tensor]]):
    """Endless seeded batches of (content feature crops (B, 512, c, c), style statistics (B, 2, 960)):
    each epoch a fresh permutation of each set, as ``data.endless`` draws images, and for each style
    one of its cached crops at random. With ``mix`` > 0 each style is, with that probability, blended
    with another style drawn at random, its means and stds a weighted average (weight uniform in
    [0, 1]), as ``Stylizer`` blends styles at relu4_1 (here at all four taps): styles between the paintings.
    ``reach`` > 0 draws the weight from [-reach, 1 + reach] instead: some targets lie beyond either
    painting, more marked than both (clamped at zero, as the means and stds of ReLU features are).
    ``gain`` > 0 then scales each channel's mean and std at every tap by its own random factor
    exp(gain * z), z standard normal, as if that feature were painted more or less strongly: styles
    off the line between two paintings, which blends cannot reach. ``bold`` > 0 draws the styles
    (with replacement) with probabilities proportional to their ``style_energy`` to that power
    instead of once each per epoch: more of the marked styles, whose absolute style loss is the
    largest (and dominates the evaluation's mean)."""

    def __init__(self, contents: ContentFeatures, styles: StyleStats, batch_size: int, crop_size: int,
                 seed: int, mix: float = 0.0, reach: float = 0.0, gain: float = 0.0,
                 bold: float = 0.0) -> None:  # fmt: skip
        if crop_size % STRIDE:
            raise AdainError(f"--crop-size {crop_size} must be a multiple of {STRIDE} with --feature-cache")
        self.contents, self.styles, self.mix, self.reach, self.gain = contents, styles, mix, reach, gain
        self.draw_weights = style_energy(styles).clamp_min(1e-12) ** bold if bold else None
        self.batch_size, self.size = batch_size, crop_size // STRIDE
        smallest = min(min(f.shape[1:]) for f in contents.features)
        if self.size > smallest:
            raise AdainError(
                f"--crop-size {crop_size} is larger than the smallest content image at the load size"
            )
        self.generator = torch.Generator().manual_seed(seed)
        self.content_order = self._orders(len(contents.features))
        self.style_order = self._orders(len(styles.mean))

    def _orders(self, size: int) -> Iterator[list[int]]:
        if size < self.batch_size:
            raise AdainError(f"{size} readable images, fewer than --batch-size {self.batch_size}")
        while True:
            order = torch.randperm(size, generator=self.generator).tolist()
            for start in range(0, size - self.batch_size + 1, self.batch_size):
                yield order[start : start + self.batch_size]

    def __next__(self) -> tuple[Tensor, Tensor]:
        content = self.contents.crops(next(self.content_order), self.size, self.generator)
        if self.draw_weights is None:
            index = torch.as_tensor(next(self.style_order))
        else:
            index = torch.multinomial(
                self.draw_weights, self.batch_size, replacement=True, generator=self.generator
            )
        style = self._styles(index)
        if self.mix:
            # drawn only when mixing, so runs without it keep their draws
            other = self._styles(
                torch.randint(len(self.styles.mean), (len(style),), generator=self.generator)
            )
            weight = torch.rand(len(style), generator=self.generator) * (1 + 2 * self.reach) - self.reach
            weight *= torch.rand(len(style), generator=self.generator) < self.mix
            style = torch.lerp(style, other, weight[:, None, None]).clamp_min(0)
        if self.gain:
            # one factor per channel for its mean and std alike: the channel scaled, its spread as painted
            z = torch.randn(len(style), 1, style.shape[2], generator=self.generator)
            style = style * torch.exp(self.gain * z)
        return content, style

    def _styles(self, index: Tensor) -> Tensor:
        """(B, 2, 960): the mean and std of one cached crop, drawn at random, of each style in ``index``."""
        crop = torch.randint(self.styles.mean.shape[1], index.shape, generator=self.generator)
        return torch.stack([self.styles.mean[index, crop], self.styles.std[index, crop]], dim=1)

    def close(self) -> None:
        pass


def style_energy(styles: StyleStats) -> Tensor:
    """(N,): each style's mean square channel mean at relu2_1, averaged over its cached crops. Of
    the simple measures of a painting's strength it foretold stage 10's style loss on the 20
    canonical styles best (correlation 0.86; docs/training-recipes.md, session 30)."""
    start = TAP_CHANNELS[0]
    return styles.mean[..., start : start + TAP_CHANNELS[1]].pow(2).mean((1, 2))


def style_stats_of(batch: Tensor) -> list[Stats]:
    """A (B, 2, 960) batch of ``CachedBatches`` styles as the per-tap (mean, std) of the style loss."""
    means = batch[:, 0].split(TAP_CHANNELS, dim=1)
    stds = batch[:, 1].split(TAP_CHANNELS, dim=1)
    return [(m[..., None, None], s[..., None, None]) for m, s in zip(means, stds, strict=True)]
