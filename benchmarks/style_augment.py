"""Throughput of ``adain.StyleAugment`` at 224 px on this CPU: images per second through the
transform with p = 1 (every image restyled) and p = 0.5, one image at a time and in batches of 8,
with a bank of styles from ``train512`` encoded once beforehand (not timed).

    python benchmarks/style_augment.py [--images 32]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image
from results_file import add_out_flags, parse_args, write_results

from adain import StyleAugment, images

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--styles", type=int, default=8)
    add_out_flags(parser, "style_augment.json")
    args = parse_args(parser)
    photos = images.find_images(DATA / "content" / "train512")[: args.images]
    batch = torch.cat([images.to_tensor(Image.open(p).convert("RGB").resize((224, 224))) for p in photos])
    bank = images.find_images(DATA / "style" / "train512")[: args.styles]
    rows = {}
    for p in (1.0, 0.5):
        augment = StyleAugment(bank, p=p, alpha=(0.5, 1.0), style_size=256, seed=0)
        augment(batch[0])  # the networks' first call (kernels, caches)
        for mode, step in (("one image at a time", 1), ("batches of 8", 8)):
            start = time.perf_counter()
            for i in range(0, len(batch), step):
                augment(batch[i] if step == 1 else batch[i : i + step])
            seconds = time.perf_counter() - start
            rows[f"p={p:g}, {mode}"] = {"images_per_s": len(batch) / seconds, "seconds": seconds}
            print(f"p={p:g}, {mode}: {len(batch) / seconds:.2f} images/s")
    write_results(
        args.out, {"size": 224, "images": len(batch), "threads": torch.get_num_threads(), "rows": rows}
    )


if __name__ == "__main__":
    main()
