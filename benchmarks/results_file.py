"""Where a benchmark's JSON goes: ``--out``, never over results already there unless asked.

The committed files under ``benchmarks/results/`` are what the README cites, measured on named
machines; a run on another machine or with other arithmetic must not replace them by default.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from adain.files import write_text

RESULTS = Path(__file__).resolve().parent / "results"


def add_out_flags(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--out", type=Path, default=RESULTS / name, help=f"default: benchmarks/results/{name}"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def parse_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """``parser.parse_args()``, refusing up front (before any measuring) an ``--out`` that exists."""
    args = parser.parse_args()
    if args.out.exists() and not args.overwrite:
        parser.error(f"{args.out} exists: pass --overwrite to replace it, or another --out")
    return args


def write_results(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")
