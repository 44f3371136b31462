"""Image input and output: any file Pillow reads in, RGB tensors through, files written atomically."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from . import files
from .defaults import MAX_PIXELS
from .errors import ImageError, PixelLimitError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
SAVE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP",
                ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}  # fmt: skip
ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}
MIN_SIDE = 16  # relu4_1 needs at least 2x2 positions for its reflection padding


class _PixelLimitOff:
    """Pillow's global bomb check off while any thread decodes, because ``decode_image`` applies its
    own, adjustable one; the first decoder in switches it off and the last one out restores it, so
    concurrent decodes (the server's threads) never leave it off."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.saved: int | None = None

    def __enter__(self) -> None:
        with self.lock:
            if self.users == 0:
                self.saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            self.users += 1

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0:
                Image.MAX_IMAGE_PIXELS = self.saved


_pixel_limit_off = _PixelLimitOff()


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A fully decoded image, EXIF orientation applied, or an ImageError saying what is wrong."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    with open(path, "rb") as handle:
        return decode_image(handle, str(path), max_pixels)


def decode_image(source: BinaryIO | bytes, name: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """``load_image`` for an open binary file or bytes (an upload, say); ``name`` goes in errors."""
    if isinstance(source, bytes):
        if not source:
            raise ImageError(f"{name}: empty file (0 bytes)")
        source = io.BytesIO(source)
    with _pixel_limit_off:
        try:
            with Image.open(source) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise PixelLimitError(
                        f"{name}: {width}x{height} is {width * height:,} pixels, over the limit of "
                        f"{max_pixels:,} (a decompression-bomb guard; raise it with --max-pixels)"
                    )
                img.load()
                img = ImageOps.exif_transpose(img)
        except ImageError:
            raise
        except UnidentifiedImageError:
            raise ImageError(f"{name}: not an image file Pillow can read") from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageError(f"{name}: corrupt or truncated image ({files.first_line(exc)})") from None
    if min(img.size) < 1:
        raise ImageError(f"{name}: image has no pixels")
    return img


def split_alpha(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """8-bit RGB of any mode (grayscale, palette, CMYK, 16-bit, float) and its alpha, if it has one."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        array = np.asarray(img, dtype=np.float64)
        peak = array.max(initial=0.0)
        # 16-bit files span 0..65535; float ones usually 0..1; anything else is taken as 8-bit.
        scale = 255.0 / 65535.0 if peak > 255 else (255.0 if img.mode == "F" and peak <= 1 else 1.0)
        img = Image.fromarray(np.clip(array * scale, 0, 255).round().astype(np.uint8))
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        return rgba.convert("RGB"), rgba.getchannel("A")
    return img.convert("RGB"), None


def flatten_alpha(img: Image.Image) -> Image.Image:
    """RGB of ``img`` with any transparency composited over white (for style images)."""
    rgb, alpha = split_alpha(img)
    if alpha is None:
        return rgb
    white = Image.new("RGB", rgb.size, (255, 255, 255))
    return Image.composite(rgb, white, alpha)


def resize_short_side(img: Image.Image, size: int) -> Image.Image:
    """``img`` scaled so its shorter side is ``size`` (0 keeps it as it is)."""
    if size <= 0 or min(img.size) == size:
        return img
    width, height = img.size
    scale = size / min(width, height)
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    return img.resize(new, Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """The central ``size`` x ``size`` square (or the central square of the shorter side)."""
    side = min(size, *img.size) if size > 0 else min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img.crop((left, top, left + side, top + side))


def to_tensor(img: Image.Image) -> Tensor:
    """(1, 3, H, W) float32 in [0, 1] from an RGB image."""
    array = np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy for torch
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).float().div_(255.0).contiguous()


def to_pil(tensor: Tensor) -> Image.Image:
    """An RGB image from a (1, 3, H, W) or (3, H, W) tensor, clamped to [0, 1]."""
    if tensor.dim() == 4:
        tensor = tensor[0]
    array = tensor.detach().float().clamp(0, 1).mul_(255).round_().byte().permute(1, 2, 0).cpu()
    return Image.fromarray(array.numpy())


def save_format(path: str | os.PathLike) -> str:
    """Pillow's format name for an output path, or an ImageError for an unknown extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in SAVE_FORMATS:
        known = ", ".join(sorted(s.lstrip(".") for s in SAVE_FORMATS))
        raise ImageError(
            f"{path}: cannot tell the output format from '{suffix or 'no extension'}' (use one of {known})"
        )
    return SAVE_FORMATS[suffix]


def save_image(
    img: Image.Image,
    path: str | os.PathLike,
    overwrite: bool = False,
    alpha: Image.Image | None = None,
    quality: int = 95,
) -> Path:
    """Write ``img`` to ``path`` through a temporary file and a rename, so no half file is left.

    ``alpha`` is attached where the format keeps it (PNG, WebP, TIFF). An existing file is only
    replaced with ``overwrite``.
    """
    path = Path(path)
    fmt = save_format(path)
    if path.exists() and not overwrite:
        raise ImageError(f"{path} exists (pass --overwrite to replace it)")
    if alpha is not None and fmt in ALPHA_FORMATS:
        img = img.convert("RGB")
        img.putalpha(alpha.resize(img.size) if alpha.size != img.size else alpha)
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    try:
        with files.replacing(path) as tmp, open(tmp, "wb") as handle:
            img.save(handle, format=fmt, **options)
    except OSError as exc:
        raise ImageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def load_square(path: str | os.PathLike, size: int, max_pixels: int = MAX_PIXELS) -> Tensor:
    """An image as a (1, 3, size, size) tensor: short side resized to ``size``, centre-cropped,
    transparency over white (evaluation images, training previews)."""
    img = flatten_alpha(load_image(path, max_pixels))
    return to_tensor(center_crop(resize_short_side(img, size), size))


def find_images(path: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files in a directory by extension, sorted; a file is returned as it is."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
