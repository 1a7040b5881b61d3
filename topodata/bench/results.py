"""``results.csv``: one row per finished cell, appended at once, so a run can stop anywhere.

The CSV is the single source of truth for what is done: a cell counts as finished only once its
row is on disk (its selection folder is written *before* the row). A crash while appending can
leave a half-written last line; :func:`read_results` drops it (and truncates the file back to the
last complete row), so that cell simply runs again.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from .. import _validation as V

__all__ = ["COLUMNS", "read_results", "append_result"]

COLUMNS = (
    "cell_id",
    "experiment",  # main | full | noise | transfer
    "method",
    "rate",
    "seed",
    "embedder",
    "trainer",
    "noise",
    "n_train",
    "accuracy",  # test accuracy, fraction in [0, 1]
    "loss",  # mean test cross-entropy
    "jaccard",  # noise cells: overlap of the noisy selection with the clean one; else empty
    "steps",
    "seconds_select",
    "seconds_train",
    "protocol",  # hash of Pipeline.protocol(); one per results folder
)

_FLOATS = ("rate", "noise", "accuracy", "loss", "jaccard", "seconds_select", "seconds_train")
_INTS = ("seed", "n_train", "steps")


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Rows of ``results.csv`` with numbers parsed (empty fields become ``None``); [] if absent."""
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    if data and not data.endswith(b"\n"):  # interrupted append: drop the partial row for good
        cut = data.rfind(b"\n") + 1
        with open(p, "r+b") as fh:
            fh.truncate(cut)
        data = data[:cut]
    reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
    if reader.fieldnames is not None and tuple(reader.fieldnames) != COLUMNS:
        raise V.TopodataInputError(
            f"{p} has columns {reader.fieldnames}, not those of this topodata version; "
            "use another --out folder"
        )
    rows = []
    for raw in reader:
        row: dict[str, Any] = dict(raw)
        for k in _FLOATS:
            row[k] = float(row[k]) if row[k] not in ("", None) else None
        for k in _INTS:
            row[k] = int(row[k]) if row[k] not in ("", None) else None
        rows.append(row)
    return rows


def append_result(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row (writing the header first if the file is new) and fsync it."""
    p = Path(path)
    new = not p.exists() or p.stat().st_size == 0
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise KeyError(f"result row has unknown columns {sorted(unknown)}")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    if new:
        w.writeheader()
    w.writerow({k: _fmt(row.get(k)) for k in COLUMNS})
    with open(p, "a", encoding="utf-8") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
