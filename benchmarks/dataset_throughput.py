"""Throughput of ``adain dataset`` at 224 px (ImageNet-like): a bare in-process loop, the local
engine with 1 and 2 workers and Ray with 1 and 2 actors, in one run, on a tree of photos from
``train512`` resized to 224 x 224 and styles from ``train512``.

Every engine does the same work per image (stylize with a pre-encoded style, write a JPEG); the
bare loop does it in this process with one thread, as one worker does. Reported: images per second
end to end (worker start-up and model loading included, as a user sees it), each engine's time per
image over the bare loop's (its overhead), the efficiency of 2 workers over 1, and what N nodes of
this machine would do if the efficiency held.

    python benchmarks/dataset_throughput.py [--images 64]
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--styles", type=int, default=8)
    add_out_flags(parser, "dataset_throughput.json")
    args = parse_args(parser)
    with tempfile.TemporaryDirectory() as tmp:
        src, styles = make_tree(Path(tmp), args.images, args.styles)

        def config(out: str) -> DatasetConfig:
            return DatasetConfig(str(src), str(styles), str(Path(tmp) / out), style_size=256, ext="jpg")

        seconds = {"bare loop, 1 thread": bare_loop(config("bare"))}
        for name, workers in (("local", 1), ("local", 2), ("ray", 1), ("ray", 2)):
            seconds[f"{name}, {workers} worker{'s' * (workers > 1)}"] = engine(
                config(f"{name}{workers}"), name, workers
            )
    bare = seconds["bare loop, 1 thread"]
    rows = {}
    for label, s in seconds.items():
        workers = 2 if "2 workers" in label else 1
        rows[label] = {
            "seconds": s,
            "images_per_s": args.images / s,
            "overhead_vs_bare": s * workers / bare - 1,
        }
        print(
            f"{label:22s} {s:7.1f} s  {args.images / s:5.2f} img/s  overhead {rows[label]['overhead_vs_bare']:+.0%}"
        )
    efficiency = {
        name: seconds[f"{name}, 1 worker"] / (2 * seconds[f"{name}, 2 workers"]) for name in ("local", "ray")
    }
    per_node = args.images / seconds["ray, 2 workers"]
    print(f"efficiency 1 -> 2 workers: local {efficiency['local']:.2f}, ray {efficiency['ray']:.2f}")
    print(f"N nodes like this one on Ray: about {per_node:.2f} x N images/s "
          f"(1.28 M ImageNet images: {1.28e6 / per_node / 3600:.0f} / N hours)")  # fmt: skip
    write_results(args.out, {"images": args.images, "size": 224, "rows": rows, "efficiency_1_to_2": efficiency,
                             "ray_images_per_s_per_node": per_node})  # fmt: skip


if __name__ == "__main__":
    main()
