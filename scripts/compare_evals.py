"""Two `adain eval` reports of the same pairs side by side, per style (or per content): where one
decoder gains on the other and where it loses, which an average over 220 pairs hides.

    python scripts/compare_evals.py BASE_REPORT OTHER_REPORT [--by style|content] [--method adain]
    python scripts/compare_evals.py BASE_REPORT OTHER_REPORT --terms [--only NAME ...]

Each report is the folder `adain eval --out` wrote (its `pairs.csv`). Prints a Markdown table of
the mean style and content loss per group, the other's over the base's, sorted by the style ratio.
With `--terms`, the style loss's eight terms instead (channel means and stds at relu1_1..relu4_1,
in reports written since they were recorded), over all shared pairs or those of the groups named
by `--only` (styles, or contents with `--by content`).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from adain.evaluate import STYLE_TERMS as TERMS

Pair = tuple[str, str]
Losses = dict[Pair, tuple[float, float]]


def read_rows(report: Path, method: str) -> dict[Pair, dict[str, str]]:
    """(content, style) -> the row of pairs.csv of one method in a report folder."""
    path = report / "pairs.csv"
    if not path.is_file():
        sys.exit(f"error: {report} has no pairs.csv (an `adain eval --out` folder?)")
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["method"] == method]
    if not rows:
        sys.exit(f"error: {path} has no pairs of method {method!r}")
    return {(r["content"], r["style"]): r for r in rows}


def losses_of(rows: dict[Pair, dict[str, str]]) -> Losses:
    return {pair: (float(r["content_loss"]), float(r["style_loss"])) for pair, r in rows.items()}


def shared_pairs(base: dict, other: dict) -> list[Pair]:
    shared = sorted(base.keys() & other.keys())
    if not shared:
        sys.exit("error: the two reports have no pair in common")
    return shared


def compare(base: Losses, other: Losses, by: str) -> list[dict]:
    """Per group (a style or a content), the mean losses of both over the pairs both measured."""
    groups: dict[str, list[Pair]] = defaultdict(list)
    for pair in shared_pairs(base, other):
        groups[pair[1] if by == "style" else pair[0]].append(pair)
    rows = []
    for name, pairs in groups.items():
        mean = {which: [statistics.fmean(losses[p][i] for p in pairs) for i in (0, 1)]
                for which, losses in (("base", base), ("other", other))}  # fmt: skip
        rows.append({"name": name, "pairs": len(pairs), "base": mean["base"], "other": mean["other"],
                     "style_ratio": mean["other"][1] / mean["base"][1],
                     "content_ratio": mean["other"][0] / mean["base"][0]})  # fmt: skip
    return sorted(rows, key=lambda row: row["style_ratio"])


def compare_terms(base: dict, other: dict, by: str, only: list[str]) -> tuple[int, list[dict]]:
    """(pairs, per style-loss term: both reports' means over the shared pairs of the groups in
    ``only``, or all)."""
    pairs = [p for p in shared_pairs(base, other) if not only or (p[1] if by == "style" else p[0]) in only]
    if not pairs:
        sys.exit(f"error: no shared pair of the {by}s {', '.join(only)}")
    for report, rows in (("base", base), ("other", other)):
        if TERMS[0] not in rows[pairs[0]]:
            sys.exit(
                f"error: the {report} report has no style-loss terms (written before they were recorded)"
            )
    table = []
    for term in TERMS:
        means = [statistics.fmean(float(rows[p][term]) for p in pairs) for rows in (base, other)]
        table.append({"term": term.removeprefix("style_"), "base": means[0], "other": means[1]})
    return len(pairs), table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("base", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--by", choices=["style", "content"], default="style")
    parser.add_argument("--method", default="adain")
    parser.add_argument("--terms", action="store_true", help="the style loss's eight terms, not groups")
    parser.add_argument(
        "--only", action="append", default=[], help="with --terms: a group to keep (repeatable)"
    )
    args = parser.parse_args()
    base_rows, other_rows = read_rows(args.base, args.method), read_rows(args.other, args.method)
    if args.terms:
        n, table = compare_terms(base_rows, other_rows, args.by, args.only)
        print(f"| term ({n} pairs) | base | other | other - base | ratio |")
        print("|---|---:|---:|---:|---:|")
        for row in table:
            ratio = f"{row['other'] / row['base']:.2f}" if row["base"] else "—"
            print(f"| {row['term']} | {row['base']:.4f} | {row['other']:.4f} | {row['other'] - row['base']:+.4f} | {ratio} |")  # fmt: skip
        return
    if args.only:
        parser.error("--only goes with --terms")
    base, other = losses_of(base_rows), losses_of(other_rows)
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
