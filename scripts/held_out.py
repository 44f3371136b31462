"""Hold a fixed share of the training paintings out of training, to choose recipes on styles that
neither the decoder nor the choice has seen (the paper's 20 test styles, ranked on again and again,
are fitted by the choosing too).

    python scripts/held_out.py SRC[:NAME[:MANIFEST]]... --train DIR --held-out DIR [--share 0.1] [--max N]

Each SRC folder's images are linked into ``--train``/NAME (NAME defaults to the folder's name), or,
for the held-out ones, into ``--held-out`` (flat, at most ``--max`` of them, the rest left out of
both). A painting is held out when the hash of its key falls in the first ``--share`` of the range:
its source (``source_repo/source_path``) where the folder's MANIFEST (a CSV with ``file``,
``source_repo`` and ``source_path`` columns, as ``../shared/data/style`` has) lists it, else its
folder's and file's names. So a painting is held out from every folder it is in: from
``train512`` and its second link ``train512-again``, and, through the manifests, from both
``train512`` and ``train``, which share 88 originals at two scales under unrelated file names.
The split is the same on every machine. Existing link folders are replaced; the files themselves
are never touched.

    python scripts/held_out.py ../shared/data/style/train512:train512:../shared/data/style/MANIFEST512.csv \
        ../shared/data/style/train:train:../shared/data/style/MANIFEST.csv \
        ../shared/data/style/train512:train512-again:../shared/data/style/MANIFEST512.csv \
        --train $ADAIN_HOME/styles-mixed-x2-held-out10 --held-out $ADAIN_HOME/held-out-styles --max 20
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
from pathlib import Path

from adain.images import find_images


def fraction(key: str) -> float:
    """``key``'s hash read as a number in [0, 1)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2**32


def source_keys(manifest: Path | None) -> dict[str, str]:
    """File name -> the original it was made from, as the folder's manifest records it."""
    if manifest is None:
        return {}
    with open(manifest, newline="") as f:
        return {row["file"]: f"{row['source_repo']}/{row['source_path']}" for row in csv.DictReader(f)}


def split(
    sources: list[tuple[Path, str, dict[str, str]]], share: float
) -> tuple[dict[str, list[Path]], list[Path]]:
    """Each (folder, NAME, manifest keys) source's training images by NAME, and the held-out
    paintings: one per original (the first source's copy, so list the larger scale first), in the
    fixed order of their keys' hashes, the same on every machine (``device_carry.py`` packs the
    first of them for a GPU lease, as this script links them here)."""
    trained: dict[str, list[Path]] = {}
    held: dict[str, Path] = {}
    for folder, name, keys in sources:
        trained[name] = []
        for image in find_images(folder, recursive=True):
            key = keys.get(image.name, f"{folder.name}/{image.relative_to(folder)}")
            if fraction(key) < share:
                held.setdefault(key, image)
            else:
                trained[name].append(image)
    return trained, [held[key] for key in sorted(held, key=fraction)]


def fresh(folder: Path) -> Path:
    """``folder``, emptied of an earlier split's links (and nothing else: a real file stops it)."""
    if folder.exists():
        kept = [p for p in folder.rglob("*") if not p.is_symlink() and not p.is_dir()]
        if kept:
            raise SystemExit(f"{folder}: holds files that are not links ({kept[0]}); not replaced")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sources", nargs="+", metavar="SRC[:NAME[:MANIFEST]]")
    parser.add_argument("--train", type=Path, required=True, help="the training paintings' link folder")
    parser.add_argument("--held-out", type=Path, required=True, help="the held-out paintings' link folder")
    parser.add_argument("--share", type=float, default=0.1, help="the share held out (default 0.1)")
    parser.add_argument(
        "--max", type=int, default=0, help="link at most this many held-out paintings (0: all)"
    )
    args = parser.parse_args()
    if not 0 < args.share < 1:
        parser.error(f"--share must be between 0 and 1, not {args.share}")
    sources = []
    for spec in args.sources:
        folder, name, manifest = (spec.split(":", 2) + ["", ""])[:3]
        if not Path(folder).is_dir():
            parser.error(f"{folder}: not a directory")
        if manifest and not Path(manifest).is_file():
            parser.error(f"{manifest}: no such manifest")
        try:
            keys = source_keys(Path(manifest) if manifest else None)
        except (KeyError, csv.Error, UnicodeDecodeError) as exc:
            parser.error(f"{manifest}: not a manifest with file, source_repo and source_path columns ({exc})")
        sources.append((Path(folder).resolve(), name or Path(folder).name, keys))
    trained, held = split(sources, args.share)
    train, out = fresh(args.train), fresh(args.held_out)
    for folder, name, _ in sources:
        (train / name).mkdir()
        for image in trained[name]:
            link = train / name / image.relative_to(folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(image)
    for image in held[: args.max or None]:
        link = out / image.name
        if link.exists():  # two sets' files of one name: the folder's name tells them apart
            link = out / f"{image.parent.name}-{image.name}"
        link.symlink_to(image)
    counts = ", ".join(f"{n} {len(images):,}" for n, images in trained.items())
    print(
        f"training: {counts}; held out: {len(held):,} paintings, {min(len(held), args.max or len(held)):,} linked in {out}"
    )


if __name__ == "__main__":
    main()
