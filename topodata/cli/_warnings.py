"""Warnings in a command: one line on stderr each, like the errors, instead of Python's two."""

from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def one_line_warnings(command: str) -> Iterator[None]:
    """Print each warning raised inside the block as ``topodata COMMAND: warning: MESSAGE``."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        kind = "warning" if category is UserWarning else category.__name__
        print(f"topodata {command}: {kind}: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show  # restored by catch_warnings on exit
        yield
