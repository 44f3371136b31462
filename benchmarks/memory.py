"""Peak memory (max RSS of a fresh process) of stylizing a large content image, tiled by the
memory budget, against the same image processed whole. Each case runs in its own process.

    python benchmarks/memory.py [--sizes 2048,4096] [--max-memory 2048] [--decoder PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CASE = """
import json, resource, sys, time, torch
from adain import Stylizer
side, budget, decoder = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] or None
torch.manual_seed(0)
content = torch.rand(1, 3, 8, 8)
content = torch.nn.functional.interpolate(content, size=(side, side), mode="bicubic").clamp(0, 1)[0]
style = torch.rand(3, 256, 256)
s = Stylizer.from_pretrained(decoder=decoder, device="cpu")
s.max_pixels, s.max_memory_mb = side * side + 1, budget
start = time.perf_counter()
out = s(content, style)
print(json.dumps({"side": side, "budget_mb": budget, "seconds": time.perf_counter() - start,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "size": out.size}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="2048,4096")
    parser.add_argument("--max-memory", type=float, default=2048)
    parser.add_argument("--decoder", default="")
    parser.add_argument(
        "--whole", action="store_true", help="also run each size untiled (needs a lot of RAM)"
    )
    args = parser.parse_args()
    rows = []
    for side in (int(s) for s in args.sizes.split(",")):
        budgets = [args.max_memory] + ([1e9] if args.whole else [])
        for budget in budgets:
            result = subprocess.run([sys.executable, "-c", CASE, str(side), str(budget), args.decoder],
                                    capture_output=True, text=True)  # fmt: skip
            if result.returncode != 0:
                print(f"{side}px budget {budget:g} MB failed: {result.stderr.strip().splitlines()[-1]}")
                continue
            row = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append(row)
            mode = "whole" if budget >= 1e9 else f"budget {budget:g} MB"
            print(f"{side}x{side} {mode:>16}: peak RSS {row['peak_rss_mb']:7.0f} MB, {row['seconds']:6.1f} s")
    Path("benchmarks/results").mkdir(parents=True, exist_ok=True)
    Path("benchmarks/results/memory.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
