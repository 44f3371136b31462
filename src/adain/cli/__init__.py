"""The ``adain`` command: a thin layer over the library, one module per command.

Each command module has ``add_parser(commands)`` (its flags, with the shared defaults of
``adain.defaults``) and ``run(args)`` (which imports the library and calls it). Nothing heavy is
imported before a command runs, so ``adain --help`` is fast.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from ..errors import AdainError, UsageError
from . import ablate, bench, dataset, evaluate, export, serve, stylize, train, video
from .args import report

COMMANDS = (stylize, train, evaluate, ablate, bench, video, serve, dataset, export)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the usage block buries the one line that says what is wrong."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="adain", description="Arbitrary style transfer with adaptive instance normalisation."
    )
    parser.add_argument("--version", action="version", version=f"adain {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def _one_line_warning(message: Warning | str, category: type[Warning], *_: object, **__: object) -> str:
    return f"adain: warning: {message}\n"  # not Python's file:line and source line: users are not debugging


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so a SIGTERM unwinds like Ctrl-C: partial files are removed on the way out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help(sys.stderr)  # a bare `adain` is someone finding out what it does
        return 2
    args = parser.parse_args(argv)
    warnings.formatwarning = _one_line_warning
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    args.command_line = shlex.join(["adain", *(sys.argv[1:] if argv is None else map(str, argv))])
    try:
        return args.run(args)
    except UsageError as exc:
        report(str(exc))
        return 2
    except AdainError as exc:
        report(str(exc))
        return 1
    except OSError as exc:  # a folder that cannot be made or written: the command's output paths
        report(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))
        return 1
    except KeyboardInterrupt:
        print("adain: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        report("out of memory: try a smaller --content-size")
        return 1


if __name__ == "__main__":
    sys.exit(main())
