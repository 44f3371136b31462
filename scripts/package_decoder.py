"""Ship a trained decoder inside the package: fp16 .safetensors with its metadata, plus the model
card's loss curve.

    python scripts/package_decoder.py runs/default [--out src/adain/decoder.safetensors]
        [--continues EARLIER_LOG.csv ... --offset N] [--since M] [--raw | --at K]

Reads RUN/checkpoint.pt, RUN/config.json and RUN/log.csv (as written by `adain train`); writes the
decoder, docs/model-card/loss.png and docs/model-card/train-log.csv. A run started with
`--init-decoder` from an earlier run's decoder counts on from that run's N iterations: its log is
shifted by N, and the plot draws the earlier logs (each --continues, oldest first) before it; a run
branched from a copy of another's folder logs only its own iterations, those after M (--since M).
A run trained with `--ema` ships its moving average of the weights (`--raw`: the weights as
trained). `--at K` ships the decoder the run kept at its iteration K (`adain train --keep-every`:
RUN/snapshots/decoder-K.safetensors) instead of its checkpoint's, with the log up to K: a run that
went on past the iteration chosen for a release.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from adain import weights
from adain.plots import plot_training_curves
from adain.train import (
    decoder_of,
    decoder_state,
    load_checkpoint_file,
    read_log,
    style_targets_of,
    weights_label,
)

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "adain" / weights.PACKAGED_DECODER)
    parser.add_argument("--card", type=Path, default=ROOT / "docs" / "model-card")
    parser.add_argument(
        "--continues",
        type=Path,
        action="append",
        default=[],
        help="log.csv of the run whose decoder this one started from (again for each earlier stage, oldest first)",
    )
    parser.add_argument("--offset", type=int, default=0, help="iterations of that earlier run")
    parser.add_argument(
        "--since",
        type=int,
        default=0,
        help="log only the iterations after this one (a run branched from a copy of another's folder "
        "carries that run's log up to the branch point)",
    )
    parser.add_argument(
        "--raw", action="store_true", help="the weights as trained, not their moving average (--ema runs)"
    )
    parser.add_argument(
        "--at",
        type=int,
        metavar="K",
        help="the decoder kept at iteration K (RUN/snapshots/decoder-K.safetensors, adain train --keep-every) "
        "instead of the checkpoint's; the log up to K",
    )
    args = parser.parse_args()
    if args.at is not None and args.raw:
        parser.error("--raw and --at exclude each other: a kept decoder is the exported one")
    snapshot = None if args.at is None else args.run / "snapshots" / f"decoder-{args.at}.safetensors"
    if snapshot is not None and not snapshot.is_file():
        raise SystemExit(f"{snapshot}: no decoder kept at iteration {args.at} (adain train --keep-every)")
    last = float("inf") if args.at is None else args.offset + args.at

    log = [
        row
        for row in read_log(args.run / "log.csv", args.offset)
        if args.offset + args.since < row["iteration"] <= last
    ]
    if not log:  # said before anything is written
        upto = "" if args.at is None else f" up to {args.at}"
        raise SystemExit(f"{args.run / 'log.csv'}: no iterations after {args.since}{upto}")
    config = json.loads((args.run / "config.json").read_text())
    decoder = decoder_of(config)
    if snapshot is None:
        checkpoint = load_checkpoint_file(args.run / "checkpoint.pt")
        iteration = checkpoint["iteration"]
        averaged = not args.raw and "averaged" in checkpoint  # decided once: the weights and their label
        decoder.load_state_dict(decoder_state(checkpoint, averaged))
        label = weights_label(config["ema"] if averaged else None)
    else:
        iteration = args.at
        decoder.load_state_dict(weights.load_decoder_state(snapshot, decoder.norm, decoder.width))
        # as the trainer labelled it when it kept it
        label = weights.read_metadata(snapshot).get("weights", weights_label(config.get("ema")))
    meta = {
        "encoder": weights.encoder_id(config.get("vgg")),
        "iterations": args.offset + iteration,
        **{
            k: config[k]
            for k in (
                "batch_size",
                "crop_size",
                "load_size",
                "lr",
                "lr_decay",
                "style_weight",
                "content_weight",
                "content_target",
                "seed",
            )
        },  # fmt: skip
        "data": f"{config['content_dir']} + {config['style_dir']}",
        "style_targets": style_targets_of(config),
        "warmup": config.get("warmup", 0),
        "weights": label,
        **weights.decoder_match_meta(
            config.get("decoder_match", 0.0), config.get("decoder_match_layers", ())
        ),
    }
    weights.export_decoder(decoder, args.out, meta, half=True)
    args.card.mkdir(parents=True, exist_ok=True)
    with open(args.card / "train-log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(log[0]))
        writer.writeheader()
        writer.writerows(log)
    stages = [read_log(path) for path in args.continues] + [log]
    plot_training_curves({f"stage {n}": rows for n, rows in enumerate(stages, 1)}, args.card / "loss.png")
    total = args.offset + iteration
    print(f"{args.out} ({args.out.stat().st_size / 2**20:.1f} MiB), iteration {total}")
    segments = wall_time_segments(log)
    print(f"wall time of this run: {sum(segments):,.0f} s in {len(segments)} segment(s) (each resume "
          f"restarts the log's clock): " + ", ".join(f"{s:,.0f} s" for s in segments))  # fmt: skip
    sittings = args.run / "sittings.csv"  # written by each sitting that ended cleanly (not after SIGKILL)
    if sittings.is_file():
        with open(sittings) as f:
            for row in csv.DictReader(f):
                if not (args.since < int(row["to_iteration"]) and int(row["from_iteration"]) < iteration):
                    continue  # a sitting outside the iterations packaged
                print(f"  {row['started']}  {row['from_iteration']}->{row['to_iteration']}  "
                      f"{float(row['seconds']):,.0f} s  {row['ended']}  {row['device']}, {row['precision']}\n"
                      f"    {row['command']}")  # fmt: skip


def wall_time_segments(log: list[dict[str, float]]) -> list[float]:
    """Seconds logged by each start of a run (the clock restarts at every ``--resume``)."""
    segments: list[float] = []
    for i, row in enumerate(log):
        if i == 0 or row["seconds"] < log[i - 1]["seconds"]:
            segments.append(0.0)
        segments[-1] = row["seconds"]
    return segments


if __name__ == "__main__":
    main()
