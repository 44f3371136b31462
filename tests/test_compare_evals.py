"""scripts/compare_evals.py: two eval reports per style, on the pairs both measured."""

import csv
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_evals.py"


def report(folder: Path, rows: list[tuple[str, str, float, float]]) -> Path:
    folder.mkdir()
    with open(folder / "pairs.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "content", "style", "content_loss", "style_loss", "seconds"])
        writer.writerows([("adain", c, s, cl, sl, 0.1) for c, s, cl, sl in rows])
    return folder


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True)


def test_per_style_means_and_ratios_sorted_by_the_style_ratio(tmp_path):
    base = report(tmp_path / "a", [("c1", "s1", 2.0, 1.0), ("c2", "s1", 4.0, 3.0), ("c1", "s2", 2.0, 1.0),
                                   ("c2", "s2", 2.0, 1.0)])  # fmt: skip
    # s1 halves in style, s2 gets 1.5x worse; a pair only the other measured is left out
    other = report(tmp_path / "b", [("c1", "s1", 2.0, 0.5), ("c2", "s1", 4.0, 1.5), ("c1", "s2", 3.0, 1.5),
                                    ("c2", "s2", 3.0, 1.5), ("c3", "s1", 9.0, 9.0)])  # fmt: skip
    done = run(base, other)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[2] == "| s1 | 2 | 2.000 | 1.000 | 0.50 | 3.000 | 3.000 | 1.00 |"
    assert lines[3] == "| s2 | 2 | 1.000 | 1.500 | 1.50 | 2.000 | 3.000 | 1.50 |"
    assert "4 pairs: style loss lower in 2, median ratio 1.00; 1 of 2 styles lower" in done.stdout
    by_content = run(base, other, "--by", "content").stdout.splitlines()
    assert by_content[2].startswith("| c2 | 2 | 2.000 | 1.500 | 0.75 |")


def report_with_terms(folder: Path, rows: list[tuple[str, str, list[float]]]) -> Path:
    """A report whose pairs carry the eight style-loss terms (relu1_1 mean first)."""
    from adain.evaluate import STYLE_TERMS

    folder.mkdir()
    with open(folder / "pairs.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "content", "style", "content_loss", "style_loss", "seconds", *STYLE_TERMS])
        writer.writerows([("adain", c, s, 1.0, sum(terms), 0.1, *terms) for c, s, terms in rows])
    return folder


def test_terms_compare_the_style_loss_by_layer_for_the_styles_named(tmp_path):
    base = report_with_terms(tmp_path / "a", [("c1", "s1", [1.0] * 8), ("c2", "s1", [3.0] * 8),
                                              ("c1", "s2", [5.0] * 8)])  # fmt: skip
    other = report_with_terms(tmp_path / "b", [("c1", "s1", [0.5] + [1.0] * 7), ("c2", "s1", [1.5] + [3.0] * 6 + [4.0]),
                                               ("c1", "s2", [9.0] * 8)])  # fmt: skip
    done = run(base, other, "--terms", "--only", "s1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("| term (2 pairs) |")
    assert lines[2] == "| relu1_1_mean | 2.0000 | 1.0000 | -1.0000 | 0.50 |"
    assert lines[3] == "| relu1_1_std | 2.0000 | 2.0000 | +0.0000 | 1.00 |"
    assert lines[9] == "| relu4_1_std | 2.0000 | 2.5000 | +0.5000 | 1.25 |"
    assert run(base, other, "--terms").stdout.splitlines()[0].startswith("| term (3 pairs) |")
    # reports written before the terms were recorded, or a group with no pair: one-line errors
    old = report(tmp_path / "old", [("c1", "s1", 2.0, 1.0)])
    for args in (
        (old, other, "--terms"),
        (base, other, "--terms", "--only", "nope"),
        (base, other, "--only", "s1"),
    ):
        done = run(*args)
        assert done.returncode != 0 and "Traceback" not in done.stderr and done.stderr.strip()


def test_a_folder_without_a_report_is_a_one_line_error(tmp_path):
    done = run(tmp_path, tmp_path)
    assert done.returncode != 0 and "has no pairs.csv" in done.stderr and "Traceback" not in done.stderr
