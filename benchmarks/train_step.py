"""Seconds per training iteration: our step (auto precision, channels_last) against a plain fp32
eager loop at the same settings, measured in the same run on the same random batches.

    python benchmarks/train_step.py [--batch-size 4] [--crop-size 128] [--iters 5] [--precision auto]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from adain import weights
from adain.nets import Decoder, Encoder, adain, mean_std
from adain.train import AdaINLoss, cpu_has_native_bf16, pick_precision


def plain_step(encoder, decoder, optimizer, content, style):
    """The reference port's loop body, written out plainly: fp32, contiguous, eager."""
    style_feats = encoder.taps(style)
    content_feat = encoder(content)
    t = adain(content_feat, style_feats[-1])
    out_feats = encoder.taps(decoder(t))
    loss_c = F.mse_loss(out_feats[-1], t)
    loss_s = sum(
        F.mse_loss(mean_std(o)[0], mean_std(s)[0]) + F.mse_loss(mean_std(o)[1], mean_std(s)[1])
        for o, s in zip(out_feats, style_feats, strict=True)
    )
    loss = loss_c + 10 * loss_s
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def time_it(step, iters: int) -> list[float]:
    step()  # warm-up
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--crop-size", type=int, default=128)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = Encoder().eval().requires_grad_(False)
    encoder.load_state_dict(weights.build_encoder_state())
    shape = (args.batch_size, 3, args.crop_size, args.crop_size)
    content, style = torch.rand(shape), torch.rand(shape)

    decoder = Decoder()
    optimizer = torch.optim.Adam(decoder.parameters(), 1e-4)
    plain = time_it(lambda: plain_step(encoder, decoder, optimizer, content, style), args.iters)

    dtype = pick_precision(args.precision, torch.device("cpu"))
    model = AdaINLoss(encoder, Decoder()).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.decoder.parameters(), 1e-4)
    c_last, s_last = (x.to(memory_format=torch.channels_last) for x in (content, style))

    def ours():
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss_c, loss_s = model(c_last, s_last)
        loss = loss_c + 10 * loss_s
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    fast = time_it(ours, args.iters)
    p, f = statistics.median(plain), statistics.median(fast)
    print(f"batch {args.batch_size}, crop {args.crop_size}, {torch.get_num_threads()} threads, "
          f"precision {dtype or 'fp32'} (native bf16 on this CPU: {cpu_has_native_bf16()})")  # fmt: skip
    print(f"plain fp32 eager: {p:.3f} s/iter   ours: {f:.3f} s/iter   speed-up: {p / f:.2f}x")


if __name__ == "__main__":
    main()
