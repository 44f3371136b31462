"""scripts/held_out.py: a fixed share of the paintings kept out of training, by their originals."""

import csv
import subprocess
import sys
from pathlib import Path

from .conftest import make_image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "held_out.py"


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True)


def paintings(folder: Path, count: int, sources: list[str]) -> Path:
    """``count`` images named as the shared sets name theirs, and a manifest of their originals."""
    folder.mkdir(parents=True)
    with open(folder.parent / f"{folder.name}.csv", "w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["file", "source_repo", "source_path"])
        for i in range(count):
            make_image(folder / f"style_{i:04d}.jpg", (8, 8), seed=i)
            rows.writerow([f"style_{i:04d}.jpg", "repo", sources[i]])
    return folder


def linked(folder: Path) -> set[Path]:
    return {p.resolve() for p in folder.rglob("*") if p.is_symlink()}


def test_a_held_out_original_leaves_every_set_it_is_in(tmp_path):
    # the two sets reuse file names for other paintings, and share the originals o0..o59 at two scales
    large = paintings(tmp_path / "large", 60, [f"o{i}" for i in range(60)])
    small = paintings(tmp_path / "small", 80, [f"o{79 - i}" for i in range(80)])
    train, held = tmp_path / "train", tmp_path / "held"
    args = [f"{large}:large:{tmp_path / 'large.csv'}", f"{small}:small:{tmp_path / 'small.csv'}",
            f"{large}:large-again:{tmp_path / 'large.csv'}", "--train", train, "--held-out", held, "--share", 0.25]  # fmt: skip
    result = run(*args)
    assert result.returncode == 0, result.stderr
    trained, out = linked(train), linked(held)
    assert out and not trained & out
    source = {}  # each file's original, by its real path
    for folder in (large, small):
        with open(tmp_path / f"{folder.name}.csv") as f:
            source.update({(folder / row["file"]).resolve(): row["source_path"] for row in csv.DictReader(f)})
    held_sources = {source[p] for p in out}
    assert not {source[p] for p in trained} & held_sources  # no held-out original trained at any scale
    assert 0.1 < len(held_sources) / 80 < 0.4
    assert {p.parent for p in out if source[p] in {f"o{i}" for i in range(60)}} == {large.resolve()}
    assert linked(train / "large") == linked(train / "large-again")
    assert run(*args).returncode == 0 and linked(held) == out  # the same split again, the old links replaced

    assert run(*args[:-2], "--max", 2, "--share", 0.25).returncode == 0 and len(linked(held)) == 2


def test_a_folder_of_real_files_is_never_replaced(tmp_path):
    large = paintings(tmp_path / "large", 4, ["a", "b", "c", "d"])
    result = run(large, "--train", large, "--held-out", tmp_path / "held")
    assert result.returncode == 1 and "holds files that are not links" in result.stderr
    assert len(list(large.iterdir())) == 4
    result = run(
        f"{large}:large:{tmp_path / 'missing.csv'}", "--train", tmp_path / "t", "--held-out", tmp_path / "h"
    )
    assert result.returncode == 2 and "no such manifest" in result.stderr
