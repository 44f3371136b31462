"""Throughput of ``adain dataset`` at 224 px (ImageNet-like): a bare in-process loop, the local
engine with 1 and 2 workers and Ray with 1 and 2 actors, in one run, on a tree of photos from
``train512`` resized to 224 x 224 and styles from ``train512``.

Every engine does the same work per image (stylize with a pre-encoded style, write a JPEG); the
bare loop does it in this process with one thread, as one worker process does. Each engine runs
on a small and a large tree: the difference is the steady per-image time (start-up, spawning and
model loading, is reported apart). Reported: steady images per second; each engine's time per image
and worker over the bare loop's (its overhead); the efficiency of 2 one-core workers against the
bare loop on one core; and what N nodes of this machine would do. ("local, 1 worker" runs in this
process with every thread, as ``--workers 1`` does.)

    python benchmarks/dataset_throughput.py [--images 16,64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from results_file import add_out_flags, parse_args, write_results

from adain import images
from adain.dataset import DatasetConfig, DatasetRun, _do, _encode_styles, _start_worker

TRAIN = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def make_tree(root: Path, count: int, styles: int) -> tuple[Path, Path]:
    src, style_dir = root / "src", root / "styles"
    photos = images.find_images(TRAIN / "content" / "train512")[:count]
    for i, photo in enumerate(photos):
        folder = src / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.open(photo).convert("RGB").resize((224, 224), Image.Resampling.LANCZOS).save(
            folder / photo.name
        )
    style_dir.mkdir()
    for painting in images.find_images(TRAIN / "style" / "train512")[:styles]:
        Image.open(painting).convert("RGB").save(style_dir / painting.name)
    return src, style_dir


def bare_loop(config: DatasetConfig) -> float:
    """The work of one worker, in this process, with no engine around it."""
    run = DatasetRun(config)
    tasks = run.plan()
    codes = _encode_styles(config, sorted({t.style for t in tasks}))
    threads = torch.get_num_threads()
    start = time.perf_counter()
    _start_worker(config, codes)  # one thread and a Stylizer, as a worker has
    for task in tasks:
        _do(task)
    seconds = time.perf_counter() - start
    torch.set_num_threads(threads)
    return seconds


def engine(config: DatasetConfig, name: str, workers: int) -> float:
    start = time.perf_counter()
    counts = DatasetRun(config).execute(workers, progress=False, engine=name)
    assert counts["failed"] == 0, counts
    return time.perf_counter() - start


ENGINES = (("local", 1), ("local", 2), ("ray", 1), ("ray", 2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", default="16,64", help="the small and the large tree")
    parser.add_argument("--styles", type=int, default=8)
    add_out_flags(parser, "dataset_throughput.json")
    args = parse_args(parser)
    small, large = (int(n) for n in args.images.split(","))
    seconds: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in (small, large):
            root = Path(tmp) / str(count)
            src, styles = make_tree(root, count, args.styles)

            def config(out: str, src=src, styles=styles, root=root) -> DatasetConfig:
                return DatasetConfig(str(src), str(styles), str(root / out), style_size=256, ext="jpg")

            seconds.setdefault("bare loop, 1 thread", []).append(bare_loop(config("bare")))
            for name, workers in ENGINES:
                label = f"{name}, {workers} worker{'s' * (workers > 1)}"
                seconds.setdefault(label, []).append(engine(config(f"{name}{workers}"), name, workers))
    rows = {}
    for label, (t_small, t_large) in seconds.items():
        per_image = (t_large - t_small) / (large - small)
        rows[label] = {"seconds": [t_small, t_large], "steady_images_per_s": 1 / per_image,
                       "startup_s": max(0.0, t_small - small * per_image)}  # fmt: skip
    bare = 1 / rows["bare loop, 1 thread"]["steady_images_per_s"]
    for label, row in rows.items():
        workers = 2 if "2 workers" in label else 1
        row["overhead_vs_bare"] = workers / row["steady_images_per_s"] / bare - 1
        print(f"{label:22s} {row['steady_images_per_s']:5.2f} img/s steady, start-up {row['startup_s']:4.1f} s, "
              f"per image and worker {row['overhead_vs_bare']:+.0%} vs the bare loop")  # fmt: skip
    efficiency = {
        name: rows[f"{name}, 2 workers"]["steady_images_per_s"] * bare / 2 for name in ("local", "ray")
    }
    per_node = rows["ray, 2 workers"]["steady_images_per_s"]
    print(f"efficiency of 2 one-core workers against 2 x the bare loop: local {efficiency['local']:.2f}, "
          f"ray {efficiency['ray']:.2f}")  # fmt: skip
    print(f"N nodes like this one on Ray: about {per_node:.2f} x N images/s "
          f"(1.28 M ImageNet images: {1.28e6 / per_node / 3600:.0f} / N hours)")  # fmt: skip
    write_results(args.out, {"images": [small, large], "size": 224, "rows": rows, "efficiency_2_workers": efficiency,
                             "ray_images_per_s_per_node": per_node})  # fmt: skip


if __name__ == "__main__":
    main()
