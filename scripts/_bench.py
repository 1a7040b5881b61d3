"""Helpers shared by the benchmark scripts (airbench habit: one ``hyp`` dict, options generated from it).

Run the scripts from the repository root (``python scripts/bench_x.py``); this folder is then on
``sys.path``, so ``from _bench import ...`` works.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def hyp_parser(hyp: dict[str, Any], doc: str | None, source: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one ``--key`` option per ``hyp`` entry, typed by its default.

    Each option's help is the comment on its line of the ``hyp = {...}`` block in ``source`` (the
    script that is running, by default): the one place the scripts already explain their knobs.
    """
    comments = _hyp_comments(source if source is not None else getattr(sys.modules["__main__"], "__file__", None))
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    for key, value in hyp.items():
        note = comments.get(key)
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value,
                            help=f"{note} (default: {value})" if note else f"default: {value}")
    return parser


def _hyp_comments(path: str | None) -> dict[str, str]:
    """``{key: comment}`` for the ``"key": value,  # comment`` lines of the ``hyp = {`` block of ``path``."""
    if not path or not Path(path).is_file():
        return {}
    lines = Path(path).read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("hyp = {")), None)
    if start is None:
        return {}
    out = {}
    for line in lines[start + 1:]:
        if line.startswith("}"):
            break
        m = re.match(r'\s*"(\w+)"\s*:.*?#\s*(.+?)\s*$', line)
        if m:
            out[m.group(1)] = m.group(2).replace("%", "%%")  # argparse formats help with %
    return out


def parse_hyp(hyp: dict[str, Any], doc: str | None, argv: list[str] | None,
              out_help: str = "folder for results.json and a copy of the script"):
    """``(h, args)``: the ``hyp`` values as given on the command line, plus ``args.out`` (a Path or None)."""
    parser = hyp_parser(hyp, doc)
    parser.add_argument("--out", type=Path, default=None, help=out_help)
    args = parser.parse_args(argv)
    return {k: getattr(args, k) for k in hyp}, args


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Best wall time of ``repeats`` calls (least disturbed by other load) and the last result."""
    best, out = np.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def noisy_digits(noise: float, *, test_size: float = 0.3):
    """sklearn digits split 70/30 (seeded, stratified) with a fraction ``noise`` of the training labels
    moved to another class: ``(x_tr, x_te, y_tr, y_te, y_noisy, flip)``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=0, stratify=y)
    rng = np.random.default_rng(0)
    flip = rng.random(len(y_tr)) < noise
    y_noisy = y_tr.copy()
    y_noisy[flip] = (y_tr[flip] + rng.integers(1, 10, flip.sum())) % 10
    return x_tr, x_te, y_tr, y_te, y_noisy, flip


def save_results(out, results, script: str) -> None:
    """The airbench habit: ``results.json`` and a copy of the script that produced it, in ``out``."""
    import json
    import shutil

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    shutil.copy(script, out / Path(script).name)
    print(f"wrote {out}/results.json")


def parse_options(text: str) -> dict[str, Any]:
    """``'k=v,k=v'`` as a dict: ``true``/``false`` as booleans, then int, then float, else the string."""
    out: dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, _, value = item.partition("=")
        if value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
            continue
        for cast in (int, float, str):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
    return out


def fmt(v) -> str:
    """A table cell: floats to 4 significant digits (whole numbers from 1,000 on)."""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def print_table(rows: list[dict], title: str) -> None:
    """Print ``rows`` (dicts with the same keys) as an aligned markdown-style table under ``title``."""
    import sys

    print(f"\n## {title}")
    if not rows:
        return
    keys = list(rows[0])
    width = {k: max(len(k), *(len(fmt(r[k])) for r in rows)) for k in keys}
    print(" | ".join(k.ljust(width[k]) for k in keys))
    print("-|-".join("-" * width[k] for k in keys))
    for r in rows:
        print(" | ".join(fmt(r[k]).ljust(width[k]) for k in keys))
    sys.stdout.flush()
