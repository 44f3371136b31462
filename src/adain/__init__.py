"""AdaIN: arbitrary style transfer in real time (Huang & Belongie, ICCV 2017)."""

from importlib.metadata import PackageNotFoundError, version

from .errors import AdainError, ImageError, WeightsError
from .nets import Decoder, Encoder, adain, mean_std
from .stylize import StyleCode, Stylizer

try:
    __version__ = version("adain")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = [
    "AdainError", "Decoder", "Encoder", "ImageError", "StyleCode", "Stylizer", "WeightsError",
    "__version__", "adain", "mean_std",
]  # fmt: skip
