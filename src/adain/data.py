"""Training data: the images under a folder, random crops, and endless seeded batches from worker
processes that a run can stop cleanly."""

from __future__ import annotations

import os
import random
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from . import images
from .errors import AdainError, ImageError


class ImageDataset(Dataset):
    """Images under a folder (recursively), resized to ``load_size`` short side, random-cropped.

    An unreadable file is replaced by another random one, so one bad file never ends a run; it is
    reported once, and never decoded again. The record of bad files is in shared memory, so the
    data workers' findings reach the trainer."""

    def __init__(
        self, root: str | os.PathLike, load_size: int, crop_size: int, shard: tuple[int, int] = (0, 1)
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise AdainError(f"{root}: not a directory")
        rank, world = shard
        every = images.find_images(self.root, recursive=True)
        self.files, self.total = every[rank::world], len(every)
        if not self.files:
            raise AdainError(
                f"{root}: no images found (looked for {', '.join(sorted(images.IMAGE_SUFFIXES))})"
            )
        if crop_size > load_size:
            raise AdainError(f"--crop-size {crop_size} is larger than --load-size {load_size}")
        self.load_size, self.crop_size = load_size, crop_size
        self.unreadable = torch.zeros(len(self.files), dtype=torch.bool).share_memory_()

    def __len__(self) -> int:
        return len(self.files)

    @property
    def skipped(self) -> int:
        """How many files turned out unreadable so far."""
        return int(self.unreadable.sum())

    def __getitem__(self, index: int) -> Tensor:
        for _ in range(10):
            if not self.unreadable[index]:
                try:
                    img = images.flatten_alpha(images.load_image(self.files[index]))
                    return images.to_tensor(self._random_crop(img))[0]
                except ImageError as exc:
                    self.unreadable[index] = True
                    warnings.warn(f"skipping unreadable training image: {exc}", stacklevel=1)
            index = random.randrange(len(self.files))
        raise AdainError(f"{self.root}: too many unreadable images in a row")

    def _random_crop(self, img):
        img = images.resize_short_side(img, self.load_size)
        left = random.randint(0, img.width - self.crop_size)
        top = random.randint(0, img.height - self.crop_size)
        return img.crop((left, top, left + self.crop_size, top + self.crop_size))


class EndlessBatches(Sampler[list[int]]):
    """Index batches forever: each epoch a fresh seeded permutation, its incomplete last batch dropped."""

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed

    def __iter__(self) -> Iterator[list[int]]:
        epoch = 0
        while True:
            order = torch.randperm(
                self.size, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            )
            for start in range(0, self.size - self.batch_size + 1, self.batch_size):
                yield order[start : start + self.batch_size].tolist()
            epoch += 1


def endless(dataset: Dataset, batch_size: int, workers: int, seed: int, pin_memory: bool = False) -> Batches:
    """Batches forever, reshuffled each epoch; seeded so a resumed run draws a fresh sequence.

    The data workers start here, once, for the whole run: forking new ones at every epoch while the
    progress bar's and TensorBoard's threads run could copy a held lock into a worker and hang it.
    """
    loader = DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_sampler=EndlessBatches(len(dataset), batch_size, seed),  # type: ignore[arg-type]
        num_workers=workers,
        prefetch_factor=4 if workers else None,
        pin_memory=pin_memory,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(seed),
    )
    return Batches(iter(loader))


class Batches(Iterator[Tensor]):
    """A DataLoader's batches, with ``close()`` to stop its workers and our errors kept one line.

    The workers ignore SIGTERM (``_seed_worker``), so they must be shut down by the loader itself:
    left to the interpreter's exit (as after an error, when a reference cycle through the traceback
    keeps the loader alive), multiprocessing would SIGTERM them and wait for them forever."""

    def __init__(self, loader_iterator: Iterator[Tensor]) -> None:
        self.batches = loader_iterator

    def __next__(self) -> Tensor:
        try:
            return next(self.batches)
        except AdainError as exc:
            # from a worker, the message is PyTorch's report with the worker's traceback; ours is its last line
            last = str(exc).strip().splitlines()[-1]
            raise AdainError(
                last.removeprefix(f"{AdainError.__module__}.{AdainError.__qualname__}: ")
            ) from None

    def close(self) -> None:
        shutdown = getattr(self.batches, "_shutdown_workers", None)  # what the loader's __del__ calls
        if shutdown is not None:
            shutdown()


def _seed_worker(worker_id: int) -> None:
    # A Ctrl-C or SIGTERM sent to the whole process group (a terminal, pkill, a container stop) is the
    # trainer's to act on: it saves a checkpoint and then shuts the workers down. PyTorch's worker loop
    # ends quietly on SIGINT, and a batch still in flight from a worker gone that way fails to unpickle.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
