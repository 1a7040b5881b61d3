"""The ``topodata`` command: a root parser that registers one sub-command per module.

Each ``topodata/cli/<name>.py`` offers ``add_parser(subparsers)`` which registers its parser and
``set_defaults(func=run)``; ``run(args)`` is one call into the library (house rule 11).
Bad input of any kind ends as one line on stderr and exit status 2, with nothing written.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .._validation import TopodataInputError

# (module, one-line help); order is the order shown by --help
COMMANDS = [
    ("select", "choose the samples to keep and export their indices"),
    ("embed", "train a proxy model and extract penultimate-layer features"),
    ("train", "train a model on a kept subset and evaluate it on the test split"),
    ("bench", "run a pipeline of methods x rates x seeds (resumable)"),
    ("neural_persistence", "neural persistence and critical compression of a network's layers"),
    ("timp", "iterative magnitude pruning (IMP) and its topological variant (T-IMP)"),
    ("env", "print versions and devices for bug reports"),
]

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        rc = args.func(args)
    except (TopodataInputError, ValueError, TypeError, FileNotFoundError, NotADirectoryError,
            PermissionError, KeyError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, KeyError):
            msg = f"missing key {msg}"
        print(f"topodata {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"topodata {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # python -m topodata.cli
    sys.exit(main())
