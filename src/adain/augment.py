"""Style augmentation for training other networks: with probability ``p``, an image is repainted in
a random style of a bank, with alpha drawn from a range (style randomisation for robustness and
domain generalisation).

    augment = StyleAugment("paintings/", p=0.5, alpha=(0.3, 1.0))
    dataset = ImageFolder("train/", transform=Compose([ToTensor(), augment]))

It takes and gives (3, H, W) float tensors in [0, 1] (or (N, 3, H, W) batches, each image drawn
for on its own). It pickles without its networks, so DataLoader workers each load their own
``Stylizer`` on first use; the style bank is encoded once, where the transform is made.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from . import images
from .errors import AdainError
from .stylize import StyleCode, Stylizer


class StyleAugment:
    def __init__(
        self,
        styles: str | os.PathLike | Sequence[str | os.PathLike | StyleCode],
        p: float = 0.5,
        alpha: tuple[float, float] = (1.0, 1.0),
        style_size: int = 512,
        seed: int | None = None,
        **weights: object,
    ) -> None:
        """``styles``: a folder of style images, or images and encoded styles; ``weights`` are
        ``Stylizer.from_pretrained``'s (vgg, decoder, device, precision)."""
        if not 0.0 <= p <= 1.0:
            raise AdainError(f"p must be between 0 and 1, got {p}")
        if not 0.0 <= alpha[0] <= alpha[1] <= 1.0:
            raise AdainError(f"alpha must be an ordered range within 0..1, got {alpha}")
        self.p, self.alpha, self.weights = p, alpha, weights
        self.rng = random.Random(seed)
        self._stylizer: Stylizer | None = None
        items = images.find_images(styles, recursive=True) if Path(str(styles)).is_dir() else list(styles)  # type: ignore[arg-type]
        if not items:
            raise AdainError(f"{styles}: no style images")
        self.bank = [s.to("cpu") if isinstance(s, StyleCode) else self.stylizer.encode_style(s, style_size).to("cpu")
                     for s in items]  # fmt: skip

    @property
    def stylizer(self) -> Stylizer:
        """Loaded on first use in each process (a DataLoader worker gets the transform without it)."""
        if self._stylizer is None:
            self._stylizer = Stylizer.from_pretrained(**self.weights)  # type: ignore[arg-type]
        return self._stylizer

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_stylizer": None}

    def __call__(self, image: Tensor) -> Tensor:
        if image.dim() == 4:
            return torch.stack([self(x) for x in image])
        if self.rng.random() >= self.p:
            return image
        code = self.bank[self.rng.randrange(len(self.bank))]
        alpha = self.rng.uniform(*self.alpha)
        out = self.stylizer.stylize_tensor(image[None].float(), [code], alpha)[0]
        return out.to(image.device, image.dtype)
