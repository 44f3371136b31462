"""Two `adain eval` reports of the same pairs side by side, per style (or per content): where one
decoder gains on the other and where it loses, which an average over 220 pairs hides.

    python scripts/compare_evals.py BASE_REPORT OTHER_REPORT [--by style|content] [--method adain]

Each report is the folder `adain eval --out` wrote (its `pairs.csv`). Prints a Markdown table of
the mean style and content loss per group, the other's over the base's, sorted by the style ratio.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

Losses = dict[tuple[str, str], tuple[float, float]]


def read_pairs(report: Path, method: str) -> Losses:
    """(content, style) -> (content loss, style loss) of one method in a report folder."""
    path = report / "pairs.csv"
    if not path.is_file():
        sys.exit(f"error: {report} has no pairs.csv (an `adain eval --out` folder?)")
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["method"] == method]
    if not rows:
        sys.exit(f"error: {path} has no pairs of method {method!r}")
    return {(r["content"], r["style"]): (float(r["content_loss"]), float(r["style_loss"])) for r in rows}


def compare(base: Losses, other: Losses, by: str) -> list[dict]:
    """Per group (a style or a content), the mean losses of both over the pairs both measured."""
    shared = sorted(base.keys() & other.keys())
    if not shared:
        sys.exit("error: the two reports have no pair in common")
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for pair in shared:
        groups[pair[1] if by == "style" else pair[0]].append(pair)
    rows = []
    for name, pairs in groups.items():
        mean = {which: [statistics.fmean(losses[p][i] for p in pairs) for i in (0, 1)]
                for which, losses in (("base", base), ("other", other))}  # fmt: skip
        rows.append({"name": name, "pairs": len(pairs), "base": mean["base"], "other": mean["other"],
                     "style_ratio": mean["other"][1] / mean["base"][1],
                     "content_ratio": mean["other"][0] / mean["base"][0]})  # fmt: skip
    return sorted(rows, key=lambda row: row["style_ratio"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("base", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--by", choices=["style", "content"], default="style")
    parser.add_argument("--method", default="adain")
    args = parser.parse_args()
    base, other = read_pairs(args.base, args.method), read_pairs(args.other, args.method)
    rows = compare(base, other, args.by)
    print(
        f"| {args.by} | pairs | style, base | style, other | ratio | content, base | content, other | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['name']} | {row['pairs']} | {row['base'][1]:.3f} | {row['other'][1]:.3f} | "
              f"{row['style_ratio']:.2f} | {row['base'][0]:.3f} | {row['other'][0]:.3f} | {row['content_ratio']:.2f} |")  # fmt: skip
    shared = base.keys() & other.keys()
    ratios = [other[p][1] / base[p][1] for p in shared]
    better = sum(r < 1 for r in ratios)
    print(f"\n{len(shared)} pairs: style loss lower in {better}, median ratio {statistics.median(ratios):.2f}; "
          f"{sum(r['style_ratio'] < 1 for r in rows)} of {len(rows)} {args.by}s lower on average")  # fmt: skip


if __name__ == "__main__":
    main()
