"""What ``--polish`` costs: one pass against the same image polished by each step count, timed in
turns in one run (each call encodes its style, as ``adain stylize`` does with ``--polish``), and the
peak resident memory of each, each in a fresh process, against a single pass's. Then the steps
alone (``adain.gatys.polish``, 3 steps on the single pass's output) in float32 against bfloat16,
timed in turns: a bf16 pipeline (``--precision auto`` on a bf16 CPU) steps in bf16. What polish
buys in style loss is measured by ``adain eval --polish N`` on the canonical pairs (README,
"Polish"); what bf16 steps change in it, by ``scripts/style_channels.py polish --arithmetic``.

    python benchmarks/polish.py [--sizes 512,1024] [--steps 1,3,10] [--runs 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch
from inference import smooth_image, timed
from results_file import add_out_flags, parse_args, write_results

from adain import Stylizer, images
from adain.devices import dtype_name
from adain.gatys import polish
from adain.nets import mean_std, taps

STEPS_ALONE = 3


def inputs(size: int):
    """A photo stand-in of size x size and a 256 px noise style, the same for a size."""
    g = torch.Generator().manual_seed(size)
    return images.to_pil(smooth_image(size, g)), images.to_pil(torch.rand(1, 3, 256, 256, generator=g))


def peak_mb(size: int, steps: int, decoder: Path | None) -> float:
    """Peak resident size in MB of a fresh process painting one image with ``steps`` polish steps
    (Linux: its ``VmHWM``)."""
    code = (
        "import re, sys; sys.path.insert(0, 'benchmarks'); from polish import inputs;"
        "from adain import Stylizer;"
        f"s = Stylizer.from_pretrained(decoder={str(decoder) if decoder else None!r}, device='cpu',"
        f" polish={steps}, max_memory_mb=1e6, decoder_match=0);"
        f"s(*inputs({size}));"
        # the high-water mark of this process's own memory (ru_maxrss would start from the parent's)
        "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="512,1024", help="content sizes, square (default 512,1024)")
    parser.add_argument("--steps", default="1,3,10", help="polish step counts (default 1,3,10)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--decoder", type=Path)
    add_out_flags(parser, "polish.json")
    args = parse_args(parser)
    once = Stylizer.from_pretrained(decoder=args.decoder, device="cpu", max_memory_mb=1e6, decoder_match=0)
    steps = [int(n) for n in args.steps.split(",")]
    precision = dtype_name(once.dtype or torch.float32)
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, {precision}")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        content, style = inputs(size)
        stylizers = [(0, once)] + [(n, once.with_options(polish=n)) for n in steps]
        times, _ = timed([lambda s=s, c=content, k=style: s(c, k) for _, s in stylizers], args.runs)
        single_mb = peak_mb(size, 0, args.decoder)
        for (n, _), seconds in zip(stylizers, times, strict=True):
            mb = single_mb if n == 0 else peak_mb(size, n, args.decoder)
            per_pixel_kb = (mb - single_mb) * 1024 / size**2
            rows.append({"size": size, "polish": n, "seconds": seconds, "against_one_pass": seconds / times[0],
                         "peak_mb": mb, "kb_per_pixel_over_one_pass": per_pixel_kb})  # fmt: skip
            print(f"{size:>6} polish {n:<4} {seconds:>8.2f}s {seconds / times[0]:>6.2f}x "
                  f"peak {mb:>7.0f} MB ({per_pixel_kb:.2f} KB a pixel over one pass)")  # fmt: skip
    steps_rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        seconds = steps_alone(once, size, args.runs)
        polished = next(r["seconds"] for r in rows if r["size"] == size and r["polish"] == STEPS_ALONE) if (
            STEPS_ALONE in steps) else None  # fmt: skip
        steps_rows.append({"size": size, "steps": STEPS_ALONE, "fp32_seconds": seconds[0],
                           "bf16_seconds": seconds[1], "fp32_over_bf16": seconds[0] / seconds[1],
                           "content_taps_seconds": seconds[2],
                           "content_taps_share": polished and seconds[2] / polished})  # fmt: skip
        share = f" ({seconds[2] / polished:.1%} of polish {STEPS_ALONE})" if polished else ""
        print(f"{size:>6} {STEPS_ALONE} steps alone: fp32 {seconds[0]:.2f}s, bf16 {seconds[1]:.2f}s, "
              f"{seconds[0] / seconds[1]:.2f}x; the content's fp32 taps {seconds[2]:.2f}s{share}")  # fmt: skip
    write_results(
        args.out,
        {"precision": precision, "threads": torch.get_num_threads(), "rows": rows, "steps_alone": steps_rows},
    )


def steps_alone(stylizer: Stylizer, size: int, runs: int) -> list[float]:
    """Seconds of ``STEPS_ALONE`` polish steps on the single pass's output at ``size``², with the
    encoder in float32 and in bfloat16 after relu1_1, and of the content's fp32 taps that polish
    measures beside the pass's own encoding (the encoder pass that sharing them would save), timed
    in turns."""
    pictures = inputs(size)
    content, style = (images.to_tensor(image) for image in pictures)
    encode = stylizer.encode_fp32
    with torch.inference_mode():
        output = images.to_tensor(stylizer(*pictures))
        content_feat = encode(content)
        targets = [mean_std(f) for f in taps(encode, style)]
    fns = [
        lambda: polish(encode, output, content_feat, targets, STEPS_ALONE),
        lambda: polish(stylizer.encoder, output, content_feat, targets, STEPS_ALONE, dtype=torch.bfloat16),
        lambda: torch.inference_mode()(taps)(encode, content),
    ]
    return timed(fns, runs)[0]


if __name__ == "__main__":
    main()
