"""Does torch.compile pay off for stylization? Eager fast path against the same networks compiled
with inductor, including the first call's compile time, measured in one run.

    python benchmarks/torch_compile.py [--size 512] [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from adain import Stylizer


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_medians(a, b, runs: int) -> tuple[float, float]:
    """Median times of ``a`` and ``b`` run alternately, so that load from elsewhere hits both alike."""
    times_a, times_b = [], []
    for _ in range(runs):
        times_a.append(seconds(a))
        times_b.append(seconds(b))
    return statistics.median(times_a), statistics.median(times_b)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    stylizer = Stylizer.from_pretrained(device="cpu")
    x = torch.rand(1, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)

    def run(encoder, decoder) -> torch.Tensor:
        with torch.inference_mode():
            return decoder(encoder(x))

    run(stylizer.encoder, stylizer.decode)  # warm-up
    encoder, decoder = torch.compile(stylizer.encoder), torch.compile(stylizer.decode)
    first = seconds(lambda: run(encoder, decoder))  # compiles (or loads inductor's on-disk cache)
    eager, compiled = interleaved_medians(
        lambda: run(stylizer.encoder, stylizer.decode), lambda: run(encoder, decoder), args.runs
    )
    saved = eager - compiled
    breakeven = f"{(first - compiled) / saved:.0f} images" if saved > 0 else "never"
    print(f"{args.size}², encoder + decoder: eager {eager:.3f} s; compiled: first call {first:.1f} s, "
          f"then {compiled:.3f} s ({eager / compiled:.2f}x); pays off after {breakeven}")  # fmt: skip


if __name__ == "__main__":
    main()
