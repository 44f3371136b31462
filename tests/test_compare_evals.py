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


def test_a_folder_without_a_report_is_a_one_line_error(tmp_path):
    done = run(tmp_path, tmp_path)
    assert done.returncode != 0 and "has no pairs.csv" in done.stderr and "Traceback" not in done.stderr
