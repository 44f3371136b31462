"""The paper's speed table (its Table 1): time to stylize one image at given sizes, excluding and
including the style encoding, median and spread over repeated runs after a warm-up."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch

from .devices import describe_device, dtype_name
from .stylize import StyleCode, Stylizer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_runs(fn: Callable[[], object], runs: int, warmup: int, device: torch.device) -> list[float]:
    """Wall time of ``fn`` over ``runs`` calls after ``warmup`` calls, synchronising CUDA each time."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def summary(times: Sequence[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_ms": 1000 * statistics.median(ordered),
        "min_ms": 1000 * ordered[0],
        "max_ms": 1000 * ordered[-1],
        "runs": len(ordered),
    }


@torch.inference_mode()
def bench(stylizer: Stylizer, sizes: Sequence[int], runs: int = 5, warmup: int = 1) -> dict:
    """For each size, square random content and style images of that size: time per image with the
    style encoded beforehand (``excluding``) and encoded every time (``including``)."""
    device = stylizer.device
    results = []
    for size in sizes:
        generator = torch.Generator().manual_seed(size)
        content = torch.rand(3, size, size, generator=generator)
        style = torch.rand(3, size, size, generator=generator)
        code: StyleCode = stylizer.encode_style(style)
        excluding = time_runs(lambda c=content, s=code: stylizer(c, s), runs, warmup, device)
        including = time_runs(lambda c=content, s=style: stylizer(c, s), runs, warmup, device)
        results.append(
            {"size": size, "excluding_style": summary(excluding), "including_style": summary(including)}
        )
    matched = stylizer.options.decoder_match
    return {
        "device": describe_device(device),
        "dtype": dtype_name(stylizer.dtype),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        # the decoder match is part of the pipeline timed: one more decoder pass per style encoded
        "decoder_match": matched,
        "decoder_match_layers": list(stylizer.options.decoder_match_layers) if matched else [],
        "decoder_match_covariance": bool(matched and stylizer.options.decoder_match_covariance),
        "results": results,
    }
