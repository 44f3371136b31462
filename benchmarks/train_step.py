"""Seconds per training iteration: our step (auto precision, channels_last, Winograd convs on the
CPU) against a plain fp32 eager loop at the same settings, measured in the same run on the same
random batches, the steps taking turns so that all see the same machine load.

    python benchmarks/train_step.py [--batch-size 4] [--crop-size 128] [--iters 5] [--precision auto]
        [--no-winograd] [--cached] [--out benchmarks/results/train_step.json]

The plain loop and "ours" run with glibc's default allocator settings (the step as issue 14 found
it); "ours_kept" is the same step with freed memory kept for reuse, as ``adain train`` sets it on the
CPU (``devices.keep_freed_memory``). ``--cached`` also times our step, memory kept, on
``--feature-cache`` batches (content relu4_1 features cropped from a 2x larger image's, style
statistics): the same decoder, loss network and backward passes without the two encodings of the
batch.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from results_file import add_out_flags, parse_args, write_results

from adain import weights
from adain.devices import cpu_has_native_bf16, dtype_name, keep_freed_memory, pick_precision
from adain.losses import AdaINLoss
from adain.nets import Decoder, Encoder


def reference_mean_std(feat, eps=1e-5):
    """The reference port's statistics: ``Tensor.var`` over H x W."""
    n, c = feat.shape[:2]
    var = feat.view(n, c, -1).var(dim=2) + eps
    return feat.view(n, c, -1).mean(dim=2).view(n, c, 1, 1), var.sqrt().view(n, c, 1, 1)


def plain_step(encoder, decoder, optimizer, content, style):
    """The reference port's loop body, written out plainly: fp32, contiguous, eager."""
    style_feats = encoder.taps(style)
    content_feat = encoder(content)
    c_mean, c_std = reference_mean_std(content_feat)
    s_mean, s_std = reference_mean_std(style_feats[-1])
    t = (content_feat - c_mean) / c_std * s_std + s_mean
    out_feats = encoder.taps(decoder(t))
    loss_c = F.mse_loss(out_feats[-1], t)
    loss_s = 0
    for out, ref in zip(out_feats, style_feats, strict=True):
        (out_mean, out_std), (ref_mean, ref_std) = reference_mean_std(out), reference_mean_std(ref)
        loss_s = loss_s + F.mse_loss(out_mean, ref_mean) + F.mse_loss(out_std, ref_std)
    loss = loss_c + 10 * loss_s
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def cached_step(model, optimizer, dtype, batch_size: int, crop_size: int):
    """Our step on what ``--feature-cache`` hands it: content feature crops and style statistics."""
    from adain.features import CachedBatches, ContentFeatures, StyleStats, tap_statistics
    from adain.nets import taps

    with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        images = torch.rand(batch_size, 3, 2 * crop_size, 2 * crop_size).to(memory_format=torch.channels_last)
        feats = [f for f in model.encode(images).to(torch.bfloat16)]
        # whole-image statistics (K = 1): a step costs the same whichever targets the cache holds
        whole = [tap_statistics(taps(model.encode, images[i : i + 1]), None, 0) for i in range(batch_size)]
    contents = ContentFeatures(feats)
    styles = StyleStats(torch.stack([mean for mean, _ in whole]), torch.stack([std for _, std in whole]))
    batches = CachedBatches(contents, styles, batch_size, crop_size, seed=0)

    def step():
        content, style = next(batches)
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss_c, loss_s, _ = model(content.to(memory_format=torch.channels_last), style, cached=True)
        loss = loss_c + 10 * loss_s
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def time_alternating(steps: list, iters: int) -> list[list[float]]:
    """Seconds of each of ``iters`` calls of every step, the steps taking turns, after a warm-up."""
    for step in steps:
        step()
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(iters):
        for step, record in zip(steps, times, strict=True):
            start = time.perf_counter()
            step()
            record.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--crop-size", type=int, default=128)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--no-winograd", dest="winograd", action="store_false")
    parser.add_argument("--cached", action="store_true", help="also time the step on cached features")
    add_out_flags(parser, "train_step.json")
    args = parse_args(parser)
    torch.manual_seed(0)
    encoder = Encoder().eval().requires_grad_(False)
    encoder.load_state_dict(weights.build_encoder_state())
    shape = (args.batch_size, 3, args.crop_size, args.crop_size)
    content, style = torch.rand(shape), torch.rand(shape)

    decoder = Decoder()
    plain_optimizer = torch.optim.Adam(decoder.parameters(), 1e-4)

    dtype = pick_precision(args.precision, torch.device("cpu"))
    model = AdaINLoss(encoder, Decoder(), winograd=args.winograd).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.decoder.parameters(), 1e-4)
    c_last, s_last = (x.to(memory_format=torch.channels_last) for x in (content, style))

    def ours():
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss_c, loss_s, _ = model(c_last, s_last)
        loss = loss_c + 10 * loss_s
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def allocating(keep: bool, step):
        """``step`` with glibc keeping freed blocks for reuse (as ``Trainer`` sets it) or not."""

        def run():
            keep_freed_memory(keep)
            step()

        return run

    # glibc's default for the plain loop and for the step as issue 14 found it ("today's step")
    steps = {
        "plain": allocating(False, lambda: plain_step(encoder, decoder, plain_optimizer, content, style)),
        "ours": allocating(False, ours),
        "ours_kept": allocating(True, ours),
    }
    if args.cached:
        steps["cached"] = allocating(
            True, cached_step(model, optimizer, dtype, args.batch_size, args.crop_size)
        )
    kept = keep_freed_memory(True)
    times = dict(
        zip(steps, map(statistics.median, time_alternating(list(steps.values()), args.iters)), strict=True)
    )
    keep_freed_memory(False)
    p, f = times["plain"], times["ours"]
    print(f"batch {args.batch_size}, crop {args.crop_size}, {torch.get_num_threads()} threads, "
          f"precision {dtype_name(dtype)} (native bf16 on this CPU: {cpu_has_native_bf16()}), "
          f"winograd {args.winograd}, freed memory kept: {kept}")  # fmt: skip
    print(f"plain fp32 eager: {p:.3f} s/iter   ours: {f:.3f} s/iter   speed-up: {p / f:.2f}x")
    print(f"ours, freed memory kept: {times['ours_kept']:.3f} s/iter   {f / times['ours_kept']:.2f}x ours")
    cached = {}
    if args.cached:
        c = times["cached"]
        print(f"ours on cached features, freed memory kept: {c:.3f} s/iter   {f / c:.2f}x ours on images, "
              f"{times['ours_kept'] / c:.2f}x ours on images with freed memory kept, {p / c:.2f}x plain")  # fmt: skip
        cached = {
            "cached_s_per_iter": c,
            "cached_speedup_over_ours": f / c,
            "cached_speedup_over_ours_kept": times["ours_kept"] / c,
            "cached_speedup_over_plain": p / c,
        }
    result = {
        "batch_size": args.batch_size,
        "crop_size": args.crop_size,
        "threads": torch.get_num_threads(),
        "precision": dtype_name(dtype),
        "winograd": args.winograd,
        "freed_memory_kept": kept,
        "plain_s_per_iter": p,
        "ours_s_per_iter": f,
        "speedup": p / f,
        "ours_kept_s_per_iter": times["ours_kept"],
        "kept_speedup_over_ours": f / times["ours_kept"],
        **cached,
    }
    write_results(args.out, result)


if __name__ == "__main__":
    main()
