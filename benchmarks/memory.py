"""Peak memory (max RSS of a fresh process) and time of stylizing a large content image, tiled by
the memory budget, against the same image processed whole. Each case runs in its own process.

    python benchmarks/memory.py [--sizes 2048,4096,7680x4320] [--max-memory 2048] [--decoder PATH]
        [--precision auto] [--allocators call,never]

``--allocators``: ``call`` is what the library does (glibc keeps freed memory while a call runs,
``devices.freed_memory_kept``); ``never`` sets ``devices.keep_freed_memory(False)`` first (glibc's
own thresholds throughout), for the ratio of the two in one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from results_file import add_out_flags, parse_args, write_results

CASE = """
import json, os, resource, sys, tempfile, time, numpy as np
from PIL import Image
from adain import Stylizer
from adain.devices import dtype_name, keep_freed_memory
width, height, budget, decoder, precision = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] or None, sys.argv[5]
allocator = sys.argv[6]
if allocator == "never":
    keep_freed_memory(False)
# a smooth synthetic photo, saved as a file: the CLI's path, where the caller holds no copy of its own
rng = np.random.default_rng(0)
small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
path = tempfile.NamedTemporaryFile(suffix=".png", delete=False).name
small.resize((width, height), Image.Resampling.BICUBIC).save(path, compress_level=1)
style = Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
s = Stylizer.from_pretrained(decoder=decoder, device="cpu", precision=precision, max_pixels=width * height + 1,
                             max_memory_mb=budget)
start = time.perf_counter()
out = s(path, style)
seconds = time.perf_counter() - start
os.unlink(path)
print(json.dumps({"width": width, "height": height, "budget_mb": budget, "seconds": seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "size": out.size,
                  "precision": dtype_name(s.dtype), "allocator": allocator}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="2048,4096", help="N for N x N, or WxH")
    parser.add_argument("--max-memory", type=float, default=2048)
    parser.add_argument("--decoder", default="")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument(
        "--whole", action="store_true", help="also run each size untiled (needs a lot of RAM)"
    )
    parser.add_argument(
        "--allocators", default="call", help="comma-separated: call (the library's), never (glibc's own)"
    )
    add_out_flags(parser, "memory.json")
    args = parse_args(parser)
    allocators = args.allocators.split(",")
    if not set(allocators) <= {"call", "never"}:
        parser.error(f"--allocators takes call and/or never, got {args.allocators}")
    rows = []
    for size in args.sizes.split(","):
        width, _, height = size.partition("x")
        height = height or width
        budgets = [args.max_memory] + ([1e9] if args.whole else [])
        for budget, allocator in [(b, a) for b in budgets for a in allocators]:
            result = subprocess.run([sys.executable, "-c", CASE, width, height, str(budget), args.decoder, args.precision,
                                     allocator], capture_output=True, text=True)  # fmt: skip
            mode = ("whole" if budget >= 1e9 else f"budget {budget:g} MB") + f", {allocator}"
            if result.returncode != 0:
                print(f"{width}x{height} {mode} failed: {result.stderr.strip().splitlines()[-1]}")
                continue
            row = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{width}x{height} {mode:>23}: peak RSS {row['peak_rss_mb']:7.0f} MB, {row['seconds']:6.1f} s",
                flush=True,
            )
    write_results(args.out, rows)


if __name__ == "__main__":
    main()
