"""scripts/mirror_images.py: each training image linked, and its mirror image made beside it."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from .conftest import make_image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mirror_images.py"


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True)


def test_each_image_is_linked_and_mirrored_once(tmp_path):
    src, dest = tmp_path / "photos", tmp_path / "mirrored"
    src.mkdir()
    make_image(src / "a.jpg", (12, 8), seed=1)
    make_image(src / "b.png", (9, 9), seed=2)
    (src / "broken.jpg").write_bytes(b"not an image")
    done = run(src, dest)
    assert done.returncode == 0 and "2 mirror images made" in done.stderr and "1 unreadable" in done.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["a-mirrored.png", "a.jpg", "b-mirrored.png", "b.png"]
    assert (dest / "a.jpg").resolve() == (src / "a.jpg").resolve()
    original = np.asarray(Image.open(src / "b.png").convert("RGB"))
    assert np.array_equal(np.asarray(Image.open(dest / "b-mirrored.png")), original[:, ::-1])
    again = run(src, dest)  # what is there is kept
    assert again.returncode == 0 and "0 mirror images made" in again.stderr


def test_a_missing_or_empty_folder_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    for folder, reason in (
        (tmp_path / "nowhere", "not a directory"),
        (tmp_path / "empty", "no images found"),
    ):
        done = run(folder, tmp_path / "out")
        assert done.returncode != 0 and reason in done.stderr and "Traceback" not in done.stderr
