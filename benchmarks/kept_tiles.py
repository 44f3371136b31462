"""What keeping each tile's features between the passes over the tiles saves: an image over the
memory budget painted as before (the largest tile the budget takes, each tile encoded again in
every pass) and as now (``tiling.plan_tiles``: a tile a little smaller where that makes room to
keep every tile's relu4_1, each tile encoded once), timed in turns in one run, in one pass and
with ``--decoder-match 0.75`` (which makes one more pass over the tiles per chosen layer) and with
``--feedback 0.5`` (two renders, which share the kept features). The outputs
are compared too (PSNR): only the tile size and the number of encodings differ.

    python benchmarks/kept_tiles.py [--sizes 2048,3072] [--runs 2] [--memory 2048]
        [--variants one-pass,match,feedback]
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from inference import smooth_image, timed, timing_parser, timing_setup
from results_file import write_results

from adain import Stylizer, tiling

VARIANTS = [("one-pass", {}), ("match", {"decoder_match": 0.75}), ("feedback", {"feedback": 0.5})]


class EncodedInEveryPass(Stylizer):
    """The stylizer as it was: the largest tile, no features kept."""

    def _budget_tile(self, width: int, height: int, count: int = 1) -> int | None:
        padded = [n + -n % tiling.STRIDE for n in (height, width)]
        budget, overhead = self.options.memory_mb / count, self.overhead_mb / count
        return tiling.auto_tile(padded[0], padded[1], budget, overhead, self.decoder.width)

    def _kept_features(self, padded: torch.Tensor, tile: int | None) -> None:
        return None


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(np.mean((a.numpy().astype(np.float64) - b.numpy().astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def main() -> None:
    parser = timing_parser(__doc__)
    parser.add_argument("--variants", default="one-pass,match,feedback",
                        help="one-pass, match (--decoder-match 0.75), feedback (--feedback 0.5)")  # fmt: skip
    parser.add_argument("--memory", type=float, default=2048, help="the memory budget in MB (default 2048)")
    args, now, precision = timing_setup(parser, "2048,3072", 2, "kept_tiles.json")
    now = now.with_options(max_memory_mb=args.memory)
    before = copy.copy(now)
    before.__class__ = EncodedInEveryPass  # the same networks and options
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        g = torch.Generator().manual_seed(size)
        content = smooth_image(size, g)
        padded = torch.empty(1, 3, size + -size % tiling.STRIDE, size + -size % tiling.STRIDE)
        for name, options in VARIANTS:
            if name not in args.variants.split(","):
                continue
            pair = [s.with_options(**options) for s in (before, now)]
            code = pair[1].encode_style(torch.rand(3, 256, 256, generator=g))
            (slow, fast), (old, new) = timed(
                [lambda s=s, c=content, k=code: s.stylize_tensor(c, [k]) for s in pair], args.runs
            )
            row = {
                "size": size, "variant": name, "options": options, "seconds_before": slow, "seconds_now": fast,
                "speedup": slow / fast, "tile_before": before._tile_size(padded), "tile_now": now._tile_size(padded),
                "features_kept": now._kept_features(padded, now._tile_size(padded)) is not None, "psnr_db": psnr(old, new),
            }  # fmt: skip
            rows.append(row)
            print(f"{size:5d} {name}: {slow:6.1f}s before (tile {row['tile_before']}), {fast:6.1f}s now "
                  f"(tile {row['tile_now']}, kept {row['features_kept']}): {slow / fast:.2f}x, {row['psnr_db']:.1f} dB")  # fmt: skip
    write_results(args.out, {"precision": precision, "threads": torch.get_num_threads(), "memory_mb": args.memory,
                             "rows": rows})  # fmt: skip


if __name__ == "__main__":
    main()
