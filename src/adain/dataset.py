"""Stylizing a whole dataset (Stylized-ImageNet style): a source tree mirrored into an output tree,
each image painted in styles drawn by a seeded generator, resumable, in worker processes.

    run = DatasetRun(DatasetConfig(src="imagenet/train", styles="paintings", out="stylized"))
    run.execute(workers=2)

Each output's style and alpha depend only on the seed and the image's path, never on the order of
the work or the number of workers, so a resumed or a differently parallel run makes the same
files. ``OUT/manifest.csv`` records every output (source, style, alpha, seed, output, status); a run
restarted after a kill skips what the manifest says is done and its file confirms.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import multiprocessing
import os
import random
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import files, images
from .errors import AdainError, UsageError

MANIFEST_FIELDS = ("source", "style", "alpha", "seed", "output", "status")
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class DatasetConfig:
    src: str
    styles: str
    out: str
    per_content: int = 1  # styles per content image
    alpha: tuple[float, float] = (1.0, 1.0)  # drawn uniformly from this range
    content_size: int = 0  # 0 keeps each image's size, as Stylized-ImageNet did
    style_size: int = 512
    seed: int = 0
    ext: str | None = None  # None keeps each image's format
    # the Stylizer's from_pretrained arguments: vgg, decoder, device, precision (and the options asked
    # for: feedback, feedback_preview, palette, decoder_match, decoder_match_layers,
    # decoder_match_covariance, polish, polish_style_weight, max_memory_mb)
    weights: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        low, high = self.alpha
        if not 0.0 <= low <= high <= 1.0:
            raise UsageError(f"alpha range must lie within 0..1 and be ordered, got {low}..{high}")
        if self.per_content < 1:
            raise UsageError(f"--per-content must be at least 1, got {self.per_content}")


@dataclass(frozen=True)
class Task:
    source: Path  # relative to the source tree
    index: int  # which of the content's per_content outputs
    style: Path
    alpha: float
    seed: int  # this output's own seed, from the run's seed and the source path
    output: Path  # relative to the output tree


def task_seed(seed: int, source: Path, index: int) -> int:
    """A 63-bit seed for one output, the same whatever order or process does the work."""
    digest = hashlib.sha256(f"{seed}|{source.as_posix()}|{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class DatasetRun:
    """One dataset job: its plan, its manifest, and the work."""

    def __init__(self, config: DatasetConfig, overwrite: bool = False) -> None:
        self.config = config
        self.src, self.out = Path(config.src), Path(config.out)
        if not self.src.is_dir():
            raise AdainError(f"{self.src}: not a directory")
        if self.out.resolve().is_relative_to(self.src.resolve()):
            raise UsageError(f"the output {self.out} is inside the source tree {self.src}: choose another")
        self.styles = (
            images.find_images(config.styles, recursive=True) if Path(config.styles).is_dir() else []
        )
        if not self.styles:
            raise AdainError(f"{config.styles}: no style images found")
        self.sources = [p.relative_to(self.src) for p in images.find_images(self.src, recursive=True)]
        if not self.sources:
            raise AdainError(f"{self.src}: no images found")
        self._check_earlier_run(overwrite)

    @property
    def manifest_path(self) -> Path:
        return self.out / "manifest.csv"

    def _check_earlier_run(self, overwrite: bool) -> None:
        """A manifest from another configuration is refused (its files would be mixed with this
        run's) unless ``overwrite``, which starts the manifest afresh."""
        recorded = self.out / "dataset.json"
        mine = json.dumps(asdict(self.config), indent=2, sort_keys=True) + "\n"
        if recorded.is_file() and recorded.read_text() != mine:
            if not overwrite:
                raise UsageError(
                    f"{self.out} holds a run with another configuration: pass --overwrite, or another -o"
                )
            self.manifest_path.unlink(missing_ok=True)
        files.write_text(recorded, mine)

    def plan(self) -> list[Task]:
        """Every output of the run, in source order."""
        cfg, tasks = self.config, []
        for source in self.sources:
            for index in range(cfg.per_content):
                seed = task_seed(cfg.seed, source, index)
                rng = random.Random(seed)
                style = self.styles[rng.randrange(len(self.styles))]
                alpha = round(rng.uniform(*cfg.alpha), 6)
                name = source.stem if cfg.per_content == 1 else f"{source.stem}_{index}"
                suffix = f".{cfg.ext}" if cfg.ext else _kept_suffix(source)
                tasks.append(Task(source, index, style, alpha, seed, source.with_name(name + suffix)))
        return tasks

    def done(self) -> set[str]:
        """Outputs the manifest records as written, whose files are there."""
        if not self.manifest_path.is_file():
            return set()
        with open(self.manifest_path, newline="") as f:
            return {row["output"] for row in csv.DictReader(f)
                    if row.get("status") == "ok" and (self.out / row["output"]).is_file()}  # fmt: skip

    def execute(
        self, workers: int = 1, progress: bool = True, engine: str = "local", ray_address: str | None = None
    ) -> dict[str, int]:
        """Do what is not done yet; returns the counts of written, skipped (done before) and failed.

        engine: "local" (``workers`` processes on this machine) or "ray" (``workers`` Ray actors,
        each holding one Stylizer, on the cluster at ``ray_address`` or a local Ray started for
        the run)."""
        if engine not in ENGINES:
            raise UsageError(f"unknown engine {engine!r} (use {', '.join(ENGINES)})")
        from tqdm import tqdm

        tasks = self.plan()
        finished = self.done()
        todo = [t for t in tasks if t.output.as_posix() not in finished]
        counts = {"written": 0, "skipped": len(tasks) - len(todo), "failed": 0}
        if not todo:
            return counts
        codes = _encode_styles(self.config, sorted({t.style for t in todo}))
        new = not self.manifest_path.exists()
        with open(self.manifest_path, "a", newline="") as manifest:
            writer = csv.writer(manifest)
            if new:
                writer.writerow(MANIFEST_FIELDS)
            bar = tqdm(total=len(todo), desc="dataset", unit="img", disable=not progress, dynamic_ncols=True)
            run = _run_ray(self.config, codes, todo, workers, ray_address) if engine == "ray" else \
                _run(self.config, codes, todo, workers)  # fmt: skip
            for task, status in run:
                counts["written" if status == "ok" else "failed"] += 1
                writer.writerow([task.source.as_posix(), task.style.name, task.alpha, task.seed,
                                 task.output.as_posix(), status])  # fmt: skip
                manifest.flush()  # what a killed run leaves is what it finished
                bar.update(1)
            bar.close()
        return counts


def _kept_suffix(source: Path) -> str:
    suffix = source.suffix.lower()
    return suffix if suffix in images.SAVE_FORMATS else ".png"


# -- the work, in this process or in workers ------------------------------------------------------

_worker: dict = {}


def _encode_styles(config: DatasetConfig, paths: Sequence[Path]) -> dict[Path, object]:
    """Every style used, encoded once here and handed to the workers (each a few KB)."""
    stylizer = _stylizer(config)
    codes = {}
    for path in paths:
        try:
            codes[path] = stylizer.encode_style(path, config.style_size)
        except AdainError as exc:
            codes[path] = exc
    _worker["stylizer"] = stylizer
    return {
        path: code.to("cpu") if not isinstance(code, AdainError) else code for path, code in codes.items()
    }


def _stylizer(config: DatasetConfig):  # -> Stylizer
    from .stylize import Stylizer

    return Stylizer.from_pretrained(**config.weights)


def _start_worker(config: DatasetConfig, codes: dict) -> None:
    import torch

    torch.set_num_threads(1)  # one core a worker: the workers are the parallelism
    _worker.update(config=config, codes=codes, stylizer=_stylizer(config))


def _do(task: Task) -> tuple[Task, str]:
    config, stylizer, code = _worker["config"], _worker["stylizer"], _worker["codes"][task.style]
    src, out = Path(config.src) / task.source, Path(config.out) / task.output
    try:
        if isinstance(code, AdainError):
            raise code
        result = stylizer(src, code, alpha=task.alpha, content_size=config.content_size)
        images.save_image(result.convert("RGB"), out, overwrite=True)
    except AdainError as exc:
        return task, f"error: {exc}"
    return task, "ok"


def _do_content(tasks: list[Task]) -> list[tuple[Task, str]]:
    """One content's outputs (``--per-content`` of them) in a row, its features encoded once."""
    with _worker["stylizer"].reusing_content():
        return [_do(task) for task in tasks]


def by_content(tasks: Sequence[Task]) -> list[list[Task]]:
    """The tasks in their order, those of one content (consecutive in ``plan``) together."""
    groups: list[list[Task]] = []
    for task in tasks:
        if groups and groups[-1][0].source == task.source:
            groups[-1].append(task)
        else:
            groups.append([task])
    return groups


def _run(config: DatasetConfig, codes: dict, tasks: list[Task], workers: int) -> Iterator[tuple[Task, str]]:
    groups = by_content(tasks)
    if workers <= 1:
        _worker.update(config=config, codes=codes)
        for group in groups:
            yield from _do_content(group)
        return
    # spawned, not forked: a fork of a process whose OpenMP threads have run can hang in its first conv
    context = multiprocessing.get_context("spawn")
    with _worker_environment(), ProcessPoolExecutor(workers, context, initializer=_start_worker,
                                                    initargs=(config, codes)) as pool:  # fmt: skip
        for done in pool.map(_do_content, groups, chunksize=max(1, 4 // config.per_content)):
            yield from done


# Numba's thread pool is sized when numba is first imported, whatever set_num_threads says later:
# two workers of one thread each ran 3x slower per image than one (0.38 -> 1.05 s at 224 px) until
# their environment said one thread.
WORKER_ENVIRONMENT = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


@contextlib.contextmanager
def _worker_environment() -> Iterator[None]:
    """The environment worker processes start with (they inherit it when spawned)."""
    saved = {name: os.environ.get(name) for name in WORKER_ENVIRONMENT}
    os.environ.update(WORKER_ENVIRONMENT)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_ray(
    config: DatasetConfig, codes: dict, tasks: list[Task], workers: int, address: str | None
) -> Iterator[tuple[Task, str]]:
    """The same work on Ray: ``workers`` actors of one CPU each, each with its own Stylizer, fed
    a content's tasks at a time, in order (results come back in task order, as the manifest wants
    them). Paths are plain, so on a cluster every node must see the source, style and output trees
    at the same paths."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise AdainError("--engine ray needs Ray: pip install 'adain[ray]'") from None
    started = not ray.is_initialized()
    if started:
        try:
            if address:
                _check_reachable(address)
                ray.init(address=address, log_to_driver=False)
            else:  # a Ray of our own on this machine, for this run only
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise AdainError(
                f"cannot reach a Ray cluster at {address or 'a new local Ray'}: {files.first_line(exc)}"
            ) from None
    try:
        painter = ray.remote(num_cpus=1, runtime_env={"env_vars": WORKER_ENVIRONMENT})(_RayPainter)
        pool = ActorPool([painter.remote(config, codes) for _ in range(workers)])
        for done in pool.map(lambda actor, group: actor.do_content.remote(group), by_content(tasks)):
            yield from done
    except ray.exceptions.RayError as exc:  # a worker or node lost: what is done stays in the manifest
        raise AdainError(
            f"the Ray run stopped ({type(exc).__name__}: {files.first_line(exc)}); run the same command to continue"
        ) from None
    finally:
        if started:
            ray.shutdown()


def _check_reachable(address: str) -> None:
    """A cluster address that does not answer fails at once: ``ray.init`` would retry for many
    minutes. ("auto" finds the cluster this machine belongs to and fails by itself when none.)"""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        if address == "auto":
            return
        raise UsageError(f"--ray-address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConnectionError(exc.strerror or str(exc)) from None


class _RayPainter:
    """One Ray actor: a worker process of the local engine, the same initialiser and the same work."""

    def __init__(self, config: DatasetConfig, codes: dict) -> None:
        _start_worker(config, codes)

    def do_content(self, tasks: list[Task]) -> list[tuple[Task, str]]:
        return _do_content(tasks)
