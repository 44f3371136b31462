"""Stylization time of our pipeline against a faithful plain implementation of the reference one
(naoto0804/pytorch-AdaIN's test.py: fp32, eager, contiguous tensors, out-of-place ReLUs, whole image,
style encoded for every image), same weights, measured in one run; with the PSNR between the two
outputs, and the floor: the network's convolution FLOPs over this machine's measured matmul throughput,
the best time a direct-convolution implementation could reach here (Winograd convolutions do fewer
multiplies than that, so our pipeline can beat it). The three pipelines are timed in turns, so that a
noisy machine slows all of them alike.

    python benchmarks/inference.py [--sizes 256,512,1024] [--runs 3] [--decoder PATH] [--precision auto] [--no-onnx]

With the ``onnx`` extra installed, ONNX Runtime (``backend="onnx"``, fp32, style encoded per image)
is timed in the same turns, so a user can pick the faster backend on their machine.

Our pipeline's arithmetic follows ``--precision`` (auto: bf16 on a CPU with native bf16, else fp32
with Winograd convolutions); the floor uses the matmul throughput in that arithmetic.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from results_file import add_out_flags, parse_args, write_results
from torch.utils.flop_counter import FlopCounterMode

from adain import Stylizer
from adain.devices import dtype_name
from adain.errors import AdainError
from adain.nets import Decoder, Encoder, adain


def reference(encoder: Encoder, decoder: Decoder, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return decoder(adain(encoder(content), encoder(style))).clamp(0, 1)


def plain_copy(net: torch.nn.Sequential, like: type[torch.nn.Sequential]) -> torch.nn.Sequential:
    """The reference's modules: same weights, contiguous layout, ReLUs that allocate their output."""
    plain = like().eval()
    plain.load_state_dict(net.state_dict())
    for module in plain.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    return plain


def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 2048, runs: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    (seconds,), _ = timed([lambda: a @ b], runs)
    return 2 * n**3 / seconds / 1e9


def flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def timed(fns: list, runs: int) -> tuple[list[float], list]:
    """Median seconds of each function, run in turns after a warm-up, and each one's last result."""
    results = [fn() for fn in fns]
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times], results


def smooth_image(size: int, generator: torch.Generator) -> torch.Tensor:
    """A (1, 3, size, size) photo stand-in: random colours upsampled smooth, the same for a seed."""
    noise = torch.rand(1, 3, 16, 16, generator=generator)
    return torch.nn.functional.interpolate(noise, size=(size, size), mode="bicubic").clamp(0, 1)


def add_timing_flags(parser: argparse.ArgumentParser, sizes: str, runs: int) -> None:
    """The flags of an option's timing against one pass (``against_one_pass``, ``cpu_stylizer``)."""
    parser.add_argument("--sizes", default=sizes, help=f"content sizes, square (default {sizes})")
    parser.add_argument("--runs", type=int, default=runs, help=f"timed runs of each (default {runs})")
    parser.add_argument("--decoder", type=Path)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"],
                        help="torch, or the exported models in ONNX Runtime (float32; default torch)")  # fmt: skip


def timing_parser(doc: str) -> argparse.ArgumentParser:
    """The parser of an option's timing against one pass, for the benchmark's own flags first."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def timing_setup(
    parser: argparse.ArgumentParser, sizes: str, runs: int, out_name: str
) -> tuple[argparse.Namespace, Stylizer, str]:
    """``parser`` given the timing flags and the results file's, parsed; and ``cpu_stylizer``."""
    add_timing_flags(parser, sizes, runs)
    add_out_flags(parser, out_name)
    args = parse_args(parser)
    return (args, *cpu_stylizer(args))


def cpu_stylizer(args: argparse.Namespace) -> tuple[Stylizer, str]:
    """The stylizer of ``add_timing_flags``' flags on the CPU and its arithmetic's name, printed
    with the thread count and torch's version: the paper's one pass, whatever match the decoder
    records, as the baseline the variants are timed against."""
    stylizer = Stylizer.from_pretrained(
        decoder=args.decoder, device="cpu", precision=args.precision, backend=args.backend, decoder_match=0
    )
    precision = dtype_name(stylizer.dtype or torch.float32)
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, {stylizer.backend.describe()}")
    return stylizer, precision


def against_one_pass(
    once: Stylizer, variants: list[tuple[str, Stylizer]], sizes: list[int], runs: int
) -> list[dict]:
    """Seconds of ``stylize_tensor`` for one pass and for each variant (a stylizer with other
    options), timed in turns on a square photo stand-in of each size with a style encoded once, as
    a batch or a server does (by a variant that needs more of the style than relu4_1's, where one
    does); printed as they come."""
    rows = []
    # the variant that needs most of the style: the covariances hold the means and stds as well
    needs = sorted(
        variants, key=lambda v: (v[1].options.decoder_match_covariance, bool(v[1].options.decoder_match))
    )
    encoder = needs[-1][1] if needs and needs[-1][1].options.decoder_match else once
    for size in sizes:
        g = torch.Generator().manual_seed(size)
        content = smooth_image(size, g)
        code = encoder.encode_style(torch.rand(3, 256, 256, generator=g))
        stylizers = [("one pass", once), *variants]
        times, _ = timed(
            [lambda s=s, c=content, k=code: s.stylize_tensor(c, [k]) for _, s in stylizers], runs
        )
        for (name, _), seconds in zip(stylizers, times, strict=True):
            rows.append(
                {"size": size, "mode": name, "seconds": seconds, "against_one_pass": seconds / times[0]}
            )
            print(f"{size:>6} {name:<12} {seconds:>8.2f}s {seconds / times[0]:>6.2f}x", flush=True)
    return rows


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.float() * 255 - b.float() * 255).round() ** 2).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(255.0**2 / mse)).item()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--decoder", type=Path)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--no-onnx", action="store_true", help="leave ONNX Runtime out")
    add_out_flags(parser, "inference.json")
    args = parse_args(parser)
    # the reference's pipeline, the paper's: without the match the decoder may record
    ours = Stylizer.from_pretrained(
        decoder=args.decoder, device="cpu", precision=args.precision, decoder_match=0
    )
    onnx = None
    if not args.no_onnx:
        try:
            onnx = Stylizer.from_pretrained(
                decoder=args.decoder, device="cpu", backend="onnx", decoder_match=0
            )
        except AdainError as exc:  # the extra is not installed
            print(f"ONNX Runtime left out: {exc}")
    plain_encoder, plain_decoder = plain_copy(ours.encoder, Encoder), plain_copy(ours.decoder, Decoder)
    dtype = ours.dtype or torch.float32
    peak = matmul_gflops(dtype)
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, ours in {dtype_name(dtype)}, "
          f"matmul {peak:.0f} GFLOP/s in {dtype_name(dtype)}")  # fmt: skip
    print(
        f"{'size':>6} {'reference':>10} {'ours':>10} {'speed-up':>9} {'ours, cached style':>19} {'speed-up':>9} "
        f"{'PSNR dB':>8} {'floor, cached':>14} {'of floor':>9} {'GFLOP':>8} {'ours':>8}"
    )
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        g = torch.Generator().manual_seed(size)
        content = smooth_image(size, g)
        style = torch.rand(1, 3, size, size, generator=g)
        code = ours.encode_style(style[0])
        pipelines = [
            lambda c=content, s=style: reference(plain_encoder, plain_decoder, c, s),
            lambda c=content, s=style: ours.stylize_tensor(c, [ours.encode_style(s[0])]),
            lambda c=content, k=code: ours.stylize_tensor(c, [k]),
        ]
        if onnx is not None:
            pipelines.append(lambda c=content, s=style: onnx.stylize_tensor(c, [onnx.encode_style(s[0])]))
        times, outputs = timed(pipelines, args.runs)
        (t_ref, t_ours, t_cached), (out_ref, out_ours) = times[:3], outputs[:2]
        # the floor: what the network's direct convolutions cost at the matmul throughput (content
        # encoded, style cached, decoded); and the multiply-adds our cached pipeline really does
        with torch.no_grad():
            features = plain_encoder(content)
            direct_flops = flops(lambda c=content, f=features: (plain_encoder(c), plain_decoder(f)))
        floor = direct_flops / (peak * 1e9)
        cached_flops = flops(lambda c=content, k=code: ours.stylize_tensor(c, [k]))
        row = {"size": size, "reference_s": t_ref, "ours_s": t_ours, "ours_cached_s": t_cached,
               "speedup": t_ref / t_ours, "speedup_cached": t_ref / t_cached, "psnr_db": psnr(out_ours, out_ref),
               "direct_gflop": direct_flops / 1e9, "ours_cached_gflop": cached_flops / 1e9,
               "floor_cached_s": floor, "matmul_gflops": peak, "precision": dtype_name(dtype)}  # fmt: skip
        if onnx is not None:
            row.update(
                onnx_s=times[3], ours_vs_onnx=times[3] / t_ours, onnx_psnr_db=psnr(outputs[3], out_ref)
            )
        rows.append(row)
        print(f"{size:>6} {t_ref:>9.3f}s {t_ours:>9.3f}s {row['speedup']:>8.2f}x {t_cached:>18.3f}s "
              f"{row['speedup_cached']:>8.2f}x {row['psnr_db']:>8.1f} {floor:>13.3f}s {floor / t_cached:>8.0%} "
              f"{direct_flops / 1e9:>8.1f} {cached_flops / 1e9:>8.1f}"
              + (f"  ONNX Runtime {times[3]:.3f}s" if onnx is not None else ""))  # fmt: skip
    write_results(args.out, rows)


if __name__ == "__main__":
    main()
