"""Train a small image classifier with style augmentation (``adain.StyleAugment``) and test it on
other trees, e.g. the same kind of images painted in styles it never saw.

    python examples/shapes.py shapes/
    adain dataset shapes/test --styles ../shared/images/style -o shapes/test-painted \\
        --content-size 128 --style-size 256 --alpha 0.8
    python examples/train_classifier.py shapes/train --styles ../shared/data/style/train512 \\
        --test shapes/test shapes/test-painted            # augmented, p = 0.5
    python examples/train_classifier.py shapes/train --p 0 --test shapes/test shapes/test-painted

TRAIN and each test tree hold one folder per class (ImageFolder's layout). The augmentation runs
in the DataLoader's workers, image by image (``--augment-batches``: on whole batches after the
loader, in one network pass each, the way to use a GPU).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from adain import StyleAugment, images


class ImageTree(Dataset):
    """(image, label) pairs from a folder per class, images as (3, size, size) floats in [0, 1]."""

    def __init__(self, root: Path, size: int, transform=None, classes: list[str] | None = None) -> None:
        self.classes = classes or sorted(p.name for p in root.iterdir() if p.is_dir())
        if not self.classes:
            raise SystemExit(f"{root}: no class folders")
        self.samples = [(path, label) for label, name in enumerate(self.classes)
                        for path in images.find_images(root / name)]  # fmt: skip
        self.size, self.transform = size, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, label = self.samples[index]
        with Image.open(path) as img:
            x = images.to_tensor(img.convert("RGB").resize((self.size, self.size)))[0]
        return (x if self.transform is None else self.transform(x)), label


def small_cnn(classes: int, size: int) -> nn.Module:
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    # images are read and restyled at the larger --load-size (strokes fine against the shapes, in
    # the workers or on whole batches alike) and shrunk to SIZE x SIZE by the network's first layer;
    # then a global max over the last features: "is there a corner like this anywhere" (an average
    # over a 64 px image learned nothing in 250 steps; this, all of the training set)
    return nn.Sequential(nn.AdaptiveAvgPool2d(size),
                         *block(3, 32), *block(32, 64), *block(64, 128), *block(128, 128),
                         nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
                         nn.Flatten(), nn.Linear(128, classes))  # fmt: skip


@torch.no_grad()
def accuracy(model: nn.Module, data: Dataset, batch: int) -> float:
    model.eval()
    right = total = 0
    for x, y in DataLoader(data, batch_size=batch):
        right += (model(x).argmax(1) == y).sum().item()
        total += len(y)
    return right / total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("train", type=Path, help="a folder per class")
    parser.add_argument("--test", type=Path, nargs="*", default=[], help="trees to report accuracy on")
    parser.add_argument("--styles", type=Path, help="style images for the augmentation")
    parser.add_argument("--p", type=float, default=0.5, help="share of images restyled (0: no augmentation)")
    parser.add_argument("--alpha", type=float, nargs=2, default=(0.5, 1.0), metavar=("LOW", "HIGH"))
    parser.add_argument("--style-size", type=int, default=256)
    parser.add_argument(
        "--augment-batches", action="store_true", help="augment whole batches after the loader"
    )
    parser.add_argument(
        "--load-size", type=int, default=128, help="images are read (and restyled) at this size"
    )
    parser.add_argument("--size", type=int, default=64, help="the network sees SIZE x SIZE (default 64)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    augment = None
    if args.p > 0:
        if args.styles is None:
            parser.error("--styles is needed unless --p 0")
        augment = StyleAugment(args.styles, p=args.p, alpha=tuple(args.alpha), style_size=args.style_size,
                               seed=args.seed, device="cpu")  # fmt: skip
        print(
            f"style bank: {len(augment.bank)} styles, p = {args.p:g}, alpha {args.alpha[0]:g}-{args.alpha[1]:g}"
        )
    in_workers = augment if not args.augment_batches else None
    train = ImageTree(args.train, args.load_size, in_workers)
    loader = DataLoader(train, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                        persistent_workers=args.workers > 0, drop_last=len(train) > args.batch)  # fmt: skip
    model = small_cnn(len(train.classes), args.size)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(1, args.epochs + 1):
        model.train()
        start, total, right, seen = time.perf_counter(), 0.0, 0, 0
        for x, y in loader:
            if augment is not None and args.augment_batches:
                x = augment(x)
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(y)
            right += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        print(f"epoch {epoch}: loss {total / seen:.3f}, train accuracy {right / seen:.3f}, "
              f"{time.perf_counter() - start:.1f} s")  # fmt: skip
    for tree in args.test:
        score = accuracy(model, ImageTree(tree, args.load_size, classes=train.classes), args.batch)
        print(f"test {tree}: accuracy {score:.3f}")


if __name__ == "__main__":
    main()
