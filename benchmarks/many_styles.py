"""One content in many styles: what ``Stylizer.reusing_content`` saves, side by side in one run.

    python benchmarks/many_styles.py [--contents 3] [--styles 6] [--size 512] [--precision auto]

Two workloads, each timed both ways with the same stylizer, the order alternated per content:
- ``stylize``: the paper's test contents x styles through ``adain.batch.stylize_jobs`` (what
  ``adain stylize CONTENTS STYLES`` runs), against the same jobs one ``Stylizer.__call__`` at a time
  outside the block, each encoding its content again;
- ``eval``: ``adain.evaluate.evaluate`` (what ``adain eval`` runs: stylize and measure both losses),
  against the same with a stylizer whose ``reusing_content`` keeps nothing;
- ``dataset``: ``adain dataset --per-content N`` (N: the number of styles, drawn at random) on a
  tree of one content at a time, in this process (``--workers 1``), against its tasks one at a time.
The outputs are checked to be identical pixel for pixel. Styles are encoded once either way (``batch.StyleCache``).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from results_file import add_out_flags, parse_args, write_results

from adain import Stylizer, batch, images
from adain.dataset import DatasetConfig, DatasetRun, _do, _encode_styles, _run, _worker
from adain.evaluate import evaluate, summarize

IMAGES = Path(__file__).resolve().parent.parent.parent / "shared" / "images"


class EncodingEachTime(Stylizer):
    """The stylizer as it was before ``reusing_content``: every call encodes its content."""

    @contextlib.contextmanager
    def reusing_content(self) -> Iterator[Stylizer]:
        yield self


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contents", type=int, default=3)
    parser.add_argument("--styles", type=int, default=6)
    parser.add_argument("--size", type=int, default=512, help="content and style short side")
    parser.add_argument("--precision", default="auto")
    add_out_flags(parser, "many_styles.json")
    args = parse_args(parser)
    contents = images.find_images(IMAGES / "content")[: args.contents]
    styles = images.find_images(IMAGES / "style")[: args.styles]
    # the paper's one pass, as EncodingEachTime paints
    stylizer = Stylizer.from_pretrained(device="cpu", precision=args.precision, decoder_match=0)
    plain = EncodingEachTime(stylizer.encoder, stylizer.decoder, "cpu", precision=args.precision)
    stylizer(contents[0], styles[0], content_size=args.size, style_size=args.size, crop=True)  # warm-up

    seconds = {work: {"reused": 0.0, "each time": 0.0} for work in ("stylize", "eval", "dataset")}
    with tempfile.TemporaryDirectory() as tmp:
        for i, content in enumerate(contents):
            jobs, _ = batch.plan([content], styles, tmp, ext="png", overwrite=True)
            results = {}
            for way in ("reused", "each time") if i % 2 == 0 else ("each time", "reused"):
                start = time.perf_counter()
                if way == "reused":
                    done = batch.stylize_jobs(stylizer, jobs, args.size, True, content_size=args.size)
                    out = [result for _, result in done]
                else:
                    codes = batch.StyleCache(stylizer, args.size, True)
                    out = [stylizer(job.content, codes(job.styles[0]), content_size=args.size, crop=True)
                           for job in jobs]  # fmt: skip
                seconds["stylize"][way] += time.perf_counter() - start
                results[way] = [np.asarray(r) for r in out]
            assert all(np.array_equal(a, b) for a, b in zip(*results.values(), strict=True)), "outputs differ"

            summaries = {}
            for way, which in (("reused", stylizer), ("each time", plain))[:: 1 if i % 2 == 0 else -1]:
                start = time.perf_counter()
                summaries[way] = summarize(evaluate(which, [content], styles, size=args.size, progress=False))
                seconds["eval"][way] += time.perf_counter() - start
            assert summaries["reused"]["adain"]["style_loss"] == summaries["each time"]["adain"]["style_loss"]

            tree = Path(tmp) / f"tree{i}"
            (tree / "src").mkdir(parents=True)
            (tree / "src" / content.name).symlink_to(content)
            configs = {way: DatasetConfig(str(tree / "src"), str(styles[0].parent), str(tree / way), len(styles),
                                          content_size=args.size, style_size=args.size, ext="png")
                       for way in ("reused", "each time")}  # fmt: skip
            for config in configs.values():
                Path(config.out).mkdir()
            tasks = DatasetRun(configs["reused"]).plan()
            codes = _encode_styles(configs["reused"], sorted({t.style for t in tasks}))
            for way in ("reused", "each time") if i % 2 == 0 else ("each time", "reused"):
                start = time.perf_counter()
                if way == "reused":
                    statuses = [status for _, status in _run(configs[way], codes, tasks, 1)]
                else:
                    _worker.update(config=configs[way], codes=codes)
                    statuses = [_do(task)[1] for task in tasks]
                seconds["dataset"][way] += time.perf_counter() - start
                assert statuses == ["ok"] * len(tasks), statuses
            for task in tasks:
                made = [(tree / way / task.output).read_bytes() for way in configs]
                assert made[0] == made[1], "outputs differ"
            print(f"{content.name}: done")

    pairs = len(contents) * len(styles)
    rows = {}
    for workload, ways in seconds.items():
        rows[workload] = {
            **{f"{way} s/pair": s / pairs for way, s in ways.items()},
            "speed-up": ways["each time"] / ways["reused"],
        }
        print(f"{workload}: {ways['each time'] / pairs:.2f} -> {ways['reused'] / pairs:.2f} s a pair, "
              f"{rows[workload]['speed-up']:.2f}x")  # fmt: skip
    write_results(
        args.out,
        {
            "size": args.size,
            "contents": len(contents),
            "styles": len(styles),
            "precision": str(stylizer.dtype or torch.float32),
            "threads": torch.get_num_threads(),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
