"""Files written whole or not at all, for every writer in the package (images, videos, checkpoints,
exported weights, configs, reports, benchmark results).

Each is written to a temporary file beside its destination and renamed onto it when complete, so a
reader, or a run killed half-way, sees the old file or the new one and never a part of either; on
any failure the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; renamed onto ``path`` when the block
    ends, removed if it raises. ``overwrite=False`` refuses an existing ``path`` up front."""
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(errno.EEXIST, "exists (pass --overwrite to replace it)", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        publish(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``text`` written to ``path`` whole."""
    with replacing(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``data`` written to ``path`` whole."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename a finished temporary file onto ``path``, with the permissions a plain ``open()`` would
    have given it (mkstemp makes files readable by their owner only)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def check_writable(folder: str | os.PathLike) -> None:
    """An OSError now, before any work, if files cannot be made in ``folder`` (or, where it does not
    exist yet, in the nearest folder above it that does): read-only, full or not a folder."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(folder))
    fd, name = tempfile.mkstemp(dir=folder, prefix=".adain-probe-")
    os.close(fd)
    os.unlink(name)


def first_line(exc: BaseException) -> str:
    """The first sentence of an exception's message, or its type's name: for one-line errors.

    An OS or FFmpeg error gives its reason alone: its ``[Errno N] reason: 'path'`` form repeats the
    path every message here already starts with, and FFmpeg's numbers mean nothing to a user. Only
    the first sentence, because some libraries explain at length (torch's zip reader goes on for four
    more), and the type's name where the message holds no word (pickle on a non-pickle says "105").
    """
    text = (getattr(exc, "strerror", None) or str(exc)).strip()
    text = text.splitlines()[0].split(". ")[0] if text else ""
    return text if any(c.isalpha() for c in text) else type(exc).__name__
