"""Style augmentation for training other networks: with probability ``p``, an image is repainted in
a random style of a bank, with alpha drawn from a range (style randomisation for robustness and
domain generalisation).

    augment = StyleAugment("paintings/", p=0.5, alpha=(0.3, 1.0))
    dataset = ImageFolder("train/", transform=Compose([ToTensor(), augment]))

It takes and gives (3, H, W) float tensors in [0, 1] (or (N, 3, H, W) batches, each image drawn
for on its own and the restyled ones stylized together). It pickles without its networks, so DataLoader workers each load their own
``Stylizer`` on first use; the style bank is encoded once, where the transform is made. Each worker
draws from its own generator, seeded from ``seed`` and the worker's id.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor
from torch.utils.data import get_worker_info

from . import images
from .errors import AdainError, ImageError
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
        self.p, self.alpha, self.weights, self.seed = p, alpha, weights, seed
        self.rng = random.Random(seed)
        self._stylizer: Stylizer | None = None
        self._worker: int | None = None  # the DataLoader worker this copy draws in (None: the main process)
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

    def _reseed_in_worker(self) -> None:
        """Each DataLoader worker gets a copy of the generator (pickled, or forked as it is); it is
        reseeded once, from the seed and the worker's id, so that workers draw different styles,
        the same from run to run."""
        worker = get_worker_info()
        if worker is not None and worker.id != self._worker:
            self._worker = worker.id
            self.rng = random.Random(None if self.seed is None else f"{self.seed}/worker {worker.id}")

    def __call__(self, image: Tensor) -> Tensor:
        """A (3, H, W) image, or an (N, 3, H, W) batch whose restyled images go through the networks
        together (on the stylizer's device: a GPU takes a whole batch at once)."""
        self._reseed_in_worker()
        if not isinstance(image, Tensor) or image.dim() not in (3, 4) or image.shape[-3] != 3:
            raise ImageError("StyleAugment takes a (3, H, W) image or an (N, 3, H, W) batch tensor")
        if not image.is_floating_point():
            raise ImageError(
                f"StyleAugment takes floats in [0, 1], got {image.dtype} (convert with ToTensor first)"
            )
        batch = image if image.dim() == 4 else image[None]
        chosen, codes, alphas = [], [], []
        for i in range(len(batch)):  # each image draws for itself, in order, as one by one would
            if self.rng.random() < self.p:
                chosen.append(i)
                codes.append(self.bank[self.rng.randrange(len(self.bank))])
                alphas.append(self.rng.uniform(*self.alpha))
        if not chosen:
            return image
        out = batch.clone()
        restyled = self.stylizer.stylize_each(batch[chosen].float(), codes, alphas)
        out[chosen] = restyled.to(image.device, image.dtype)
        return out if image.dim() == 4 else out[0]
