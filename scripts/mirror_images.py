"""A folder of training images and their mirror images: each image of SRC linked into DEST, and
beside it its left-right mirror as a lossless PNG, so that a run draws from twice the pictures.

    python scripts/mirror_images.py ../shared/data/content/train512 $ADAIN_HOME/content-train512-mirror

Issue 14, session 42: the standing recipe trains on the whole 512 px photo (``CROP=512`` of 512 x 512
photos), so each of its 464 photos is seen framed one way only, where the feature cache makes a flip
at training time cost an encoder pass. Mirrors made once are cached like any other photo. Files
already in DEST are kept (a second call only adds what is missing); SRC is never touched. Unreadable
images are counted, skipped and reported.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from adain.images import find_images

MIRRORED = "-mirrored.png"  # the suffix of each mirror image's name


def mirror_folder(src: Path, dest: Path) -> tuple[int, int]:
    """Link and mirror each image of ``src`` into ``dest``; (images made, unreadable ones skipped)."""
    if not src.is_dir():
        raise SystemExit(f"mirror_images: {src}: not a directory")
    paths = find_images(src)
    if not paths:
        raise SystemExit(f"mirror_images: {src}: no images found")
    dest.mkdir(parents=True, exist_ok=True)
    made = skipped = 0
    for path in paths:
        link, mirror = dest / path.name, dest / (path.stem + MIRRORED)
        if not mirror.exists():
            try:
                with Image.open(path) as img:
                    flipped = ImageOps.mirror(img.convert("RGB"))
            except (OSError, UnidentifiedImageError) as exc:
                print(f"mirror_images: skipped {path}: {exc}", file=sys.stderr)
                skipped += 1
                continue
            partial = mirror.with_suffix(".part")  # never a half-written image under the real name
            flipped.save(partial, format="PNG")
            os.replace(partial, mirror)
            made += 1
        if not link.exists():
            link.symlink_to(path.resolve())
    return made, skipped


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("src", type=Path, help="folder of images")
    parser.add_argument("dest", type=Path, help="folder for the links and the mirror images")
    args = parser.parse_args()
    made, skipped = mirror_folder(args.src, args.dest)
    print(
        f"mirror_images: {made} mirror images made in {args.dest}, {skipped} unreadable skipped",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
