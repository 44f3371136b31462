"""Stylization time of our pipeline against a faithful plain implementation of the reference one
(naoto0804/pytorch-AdaIN's test.py: fp32, eager, contiguous tensors, whole image, style encoded for
every image), same weights, measured in one run; with the PSNR between the two outputs.

    python benchmarks/inference.py [--sizes 256,512,1024] [--runs 3] [--decoder PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from adain import Stylizer
from adain.nets import Decoder, Encoder, adain


def reference(encoder: Encoder, decoder: Decoder, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return decoder(adain(encoder(content), encoder(style))).clamp(0, 1)


def timed(fn, runs: int) -> tuple[float, object]:
    result = fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


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
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/inference.json"))
    args = parser.parse_args()
    ours = Stylizer.from_pretrained(decoder=args.decoder, device="cpu")
    plain_encoder, plain_decoder = Encoder().eval(), Decoder().eval()
    plain_encoder.load_state_dict(ours.encoder.state_dict())
    plain_decoder.load_state_dict(ours.decoder.state_dict())
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(
        f"{'size':>6} {'reference':>10} {'ours':>10} {'speed-up':>9} {'ours, cached style':>19} {'speed-up':>9} {'PSNR dB':>8}"
    )
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        g = torch.Generator().manual_seed(size)
        content = torch.nn.functional.interpolate(
            torch.rand(1, 3, 16, 16, generator=g), size=(size, size), mode="bicubic"
        ).clamp(0, 1)
        style = torch.rand(1, 3, size, size, generator=g)
        t_ref, out_ref = timed(
            lambda c=content, s=style: reference(plain_encoder, plain_decoder, c, s), args.runs
        )
        t_ours, out_ours = timed(
            lambda c=content, s=style: ours.stylize_tensor(c, [ours.encode_style(s[0])]), args.runs
        )
        code = ours.encode_style(style[0])
        t_cached, _ = timed(lambda c=content, k=code: ours.stylize_tensor(c, [k]), args.runs)
        row = {"size": size, "reference_s": t_ref, "ours_s": t_ours, "ours_cached_s": t_cached,
               "speedup": t_ref / t_ours, "speedup_cached": t_ref / t_cached, "psnr_db": psnr(out_ours, out_ref)}  # fmt: skip
        rows.append(row)
        print(f"{size:>6} {t_ref:>9.3f}s {t_ours:>9.3f}s {row['speedup']:>8.2f}x {t_cached:>18.3f}s "
              f"{row['speedup_cached']:>8.2f}x {row['psnr_db']:>8.1f}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
