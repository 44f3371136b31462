"""Many contents x many styles: finding the inputs, naming the outputs, encoding each style once.

jobs, problems = plan(contents, styles, "results/", ext="png")
for content, result in stylize_jobs(stylizer, jobs, controls): ...
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from . import files, images
from .errors import AdainError
from .stylize import StyleCode, Stylizer


@dataclass(frozen=True)
class Job:
    """One output image: a content, the styles it gets (one, or all of them blended or masked)."""

    content: Path
    styles: tuple[Path, ...]
    output: Path


def expand(paths: Sequence[str | os.PathLike], what: str) -> tuple[list[Path], list[str]]:
    """Files named and the images inside directories named; missing paths and empty directories
    come back as problems, not errors, so the rest can still be done."""
    found: list[Path] = []
    problems: list[str] = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = images.find_images(path)
            if not inside:
                problems.append(f"{path}: no {what} images in this directory")
            found += inside
        elif path.exists():
            found.append(path)
        else:
            problems.append(f"{path}: no such file or directory")
    return found, problems


def output_name(content: Path, styles: Sequence[Path], ext: str) -> str:
    """``<content>_stylized_<style>[+<style>...].<ext>``, as the reference implementations name them."""
    return f"{content.stem}_stylized_{'+'.join(s.stem for s in styles)}.{ext}"


def plan(
    contents: Sequence[Path],
    styles: Sequence[Path],
    output: str | os.PathLike,
    ext: str = "jpg",
    combined: bool = False,
    overwrite: bool = False,
) -> tuple[list[Job], list[str]]:
    """The jobs: every content with every style, or with all styles at once when ``combined``
    (weights or a mask). ``output`` is the file of a single result or the directory of many.

    An existing output is a problem (left out) unless ``overwrite``; two jobs that would write the
    same file are an error before any work."""
    output = Path(output)
    pairs = [
        (c, tuple(styles) if combined else (s,)) for c in contents for s in ([None] if combined else styles)
    ]
    to_file = len(pairs) == 1 and not output.is_dir() and output.suffix != ""
    if to_file:
        images.save_format(output)
    elif output.exists() and not output.is_dir():
        raise AdainError(f"{output} is a file: give a directory for {len(pairs)} results")
    elif not output.is_dir() and output.suffix.lower() in images.SAVE_FORMATS:
        raise AdainError(f"{output} names one image, but there are {len(pairs)} results: give a directory")
    try:
        files.check_writable(output.parent if to_file else output)
    except OSError as exc:
        raise AdainError(f"cannot write to {exc.filename or output}: {exc.strerror or exc}") from None
    jobs: list[Job] = []
    problems: list[str] = []
    claimed: dict[Path, tuple[Path, tuple[Path, ...]]] = {}
    for content, job_styles in pairs:
        out = output if to_file else output / output_name(content, job_styles, ext)
        if out in claimed:
            if claimed[out] == (content, job_styles):
                continue  # the same input named twice (a file and its folder, say)
            first, second = (_describe(*claimed[out]), _describe(content, job_styles))
            raise AdainError(f"{first} and {second} would both be written to {out}: rename one of the inputs")
        claimed[out] = (content, job_styles)
        if out.exists() and not overwrite:
            problems.append(f"{out} exists (pass --overwrite to replace it)")
            continue
        jobs.append(Job(content, job_styles, out))
    return jobs, problems


def _describe(content: Path, styles: tuple[Path, ...]) -> str:
    return f"{content} x {' + '.join(map(str, styles))}"


@dataclass
class StyleCache:
    """Each style file encoded once for a whole batch (or loaded, for a saved ``.safetensors``
    style); a style that failed fails every job that uses it with the same error, without being
    read again. With ``preserve_color`` a style is recoloured per content, so the file is passed
    on; a polishing stylizer encodes all four taps, which ``polish`` matches."""

    stylizer: Stylizer
    size: int = 0
    crop: bool = False
    preserve_color: bool = False
    encoded: dict[Path, StyleCode | AdainError] = field(default_factory=dict)

    def __call__(self, path: Path) -> StyleCode | Path:
        if path.suffix == ".safetensors":
            return StyleCode.load(path)
        if self.preserve_color:
            return path
        if path not in self.encoded:
            try:
                self.encoded[path] = self.stylizer.encode_style(path, self.size, self.crop)
            except AdainError as exc:
                self.encoded[path] = exc
        found = self.encoded[path]
        if isinstance(found, AdainError):
            raise found
        return found


def stylize_jobs(
    stylizer: Stylizer, jobs: Sequence[Job], style_size: int = 0, crop: bool = False, **controls: object
) -> Iterator[tuple[Job, Image.Image | AdainError]]:
    """Each job's result, or the error that stopped it (one bad file never stops the rest);
    ``controls`` are ``Stylizer.__call__``'s (alpha, style_weights, mask, preserve_color, content_size)."""
    styles = StyleCache(stylizer, style_size, crop, bool(controls.get("preserve_color")))
    # the jobs come content by content (``plan``), so a content is encoded once for all its styles
    with stylizer.reusing_content():
        for job in jobs:
            try:
                inputs = [styles(path) for path in job.styles]
                yield job, stylizer(job.content, inputs, style_size=style_size, crop=crop, **controls)  # type: ignore[arg-type]
            except AdainError as exc:
                yield job, exc
