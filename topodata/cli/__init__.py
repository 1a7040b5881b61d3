"""The ``topodata`` command: a root parser that registers one sub-command per module.

Each ``topodata/cli/<name>.py`` offers ``add_parser(subparsers)`` which registers its parser and
``set_defaults(func=run)``; ``run(args)`` is one call into the library (docs/design.md#the-command-line).
Bad input of any kind (a :class:`~topodata._validation.TopodataInputError`, an argparse error, or a
file-system error such as a missing file, a read-only or full disk) ends as one line on stderr and
exit status 2, with nothing written. Any other exception is a bug and keeps its traceback. Every
``float`` option refuses NaN and ±inf, and every path option refuses an empty string.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from pathlib import Path

from .._validation import TopodataInputError

# (module, one-line help); order is the order shown by --help
COMMANDS = [
    ("select", "choose the samples to keep and export their indices"),
    ("embed", "train a proxy model and extract penultimate-layer features"),
    ("train", "train a model on a kept subset and evaluate it on the test split"),
    ("bench", "run a pipeline of methods x rates x seeds (resumable)"),
    ("neural_persistence", "neural persistence and critical compression of a network's layers"),
    ("timp", "iterative magnitude pruning (IMP) and its topological variant (T-IMP)"),
    ("report", "write report.html: what a selection kept and dropped, with images"),
    ("env", "print versions and devices for bug reports"),
]

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {_one_line(message)}\n")


def _finite_float(text: str) -> float:
    """``type=`` of every float option: a finite number (``nan``/``inf`` pass ``float()``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _path(text: str) -> Path:
    """``type=`` of every path option: ``Path('')`` would silently mean the working folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return Path(text)


_PATH_DESTS = {"out", "checkpoint", "indices", "pipeline", "embeddings", "labels", "scores", "root"}


def _path_text(text: str) -> str:
    """``type=`` of a path option kept as a string: refuses the empty string like :func:`_path`."""
    return str(_path(text)) and text


def _harden(parser: argparse.ArgumentParser) -> None:
    """Give every ``float`` option the finite check and every ``Path`` option the non-empty one."""
    for action in parser._actions:
        if action.type is float:
            action.type = _finite_float
        elif action.type is Path:
            action.type = _path
        elif action.dest in _PATH_DESTS and action.type in (None, str):
            action.type = _path_text
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _harden(child)


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "error"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="topodata",
        description="Topology-aware data pruning: keep the samples a model still trains well on.",
        epilog="Run `topodata COMMAND --help` for the options of each command.",
    )
    from topodata import __version__

    parser.add_argument("--version", action="version", version=f"topodata {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, _help in COMMANDS:
        try:
            module = importlib.import_module(f"topodata.cli.{name}")
        except ModuleNotFoundError as exc:  # a command still being built; never in a release
            if exc.name == f"topodata.cli.{name}":
                continue
            raise
        module.add_parser(sub, help=_help)
    _harden(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        rc = args.func(args)
    except TopodataInputError as exc:  # bad input, raised by the library's checks
        msg = str(exc).strip() or type(exc).__name__
        print(f"topodata {args.command}: error: {_one_line(msg)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # missing or unreadable file, read-only or full disk, ...
        from .._io import io_error_message

        print(f"topodata {args.command}: error: {_one_line(io_error_message(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"topodata {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # python -m topodata.cli
    sys.exit(main())
