"""AdaIN: arbitrary style transfer in real time (Huang & Belongie, ICCV 2017).

    from adain import Stylizer
    image = Stylizer.from_pretrained()("photo.jpg", "painting.jpg")

The names below are imported on first use, so that ``adain --help`` does not wait for torch.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from .errors import AdainError, ImageError, PixelLimitError, UsageError, WeightsError

try:
    __version__ = version("adain")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

_LAZY = {
    "Decoder": "nets", "Encoder": "nets", "adain": "nets", "mean_std": "nets",
    "StyleCode": "stylize", "Stylizer": "stylize", "StylizerOptions": "stylize", "StyleAugment": "augment",
}  # fmt: skip

if TYPE_CHECKING:
    from .augment import StyleAugment
    from .nets import Decoder, Encoder, adain, mean_std
    from .stylize import StyleCode, Stylizer, StylizerOptions


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'adain' has no attribute {name!r}")


__all__ = [
    "AdainError", "Decoder", "Encoder", "ImageError", "PixelLimitError", "StyleAugment", "StyleCode", "Stylizer",
    "StylizerOptions", "UsageError", "WeightsError", "__version__", "adain", "mean_std",
]  # fmt: skip
