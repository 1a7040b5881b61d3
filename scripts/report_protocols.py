"""What the stress protocols' subsets hold: wrong labels kept (label noise), distinct images kept (near-dups).

Reads a bench folder of ``pipelines/fashion_mnist_label_noise.toml`` or ``pipelines/fashion_mnist_near_dup.toml``
(or any pipeline whose dataset spec carries ``+label_noise=`` / ``+near_dup=``), loads each cell's kept indices and
the dataset's ground truth (``Dataset.info``), and prints per method and rate, mean ± std over seeds: the test
accuracy, the gap to the full data recovered from random, and

- ``wrong``: the share of kept rows whose training label is not the clean one (label noise);
- ``distinct``: distinct source images among the kept rows over the most the budget allows,
  ``min(n_kept, n_images)`` (near-duplicates).

Writes ``protocol_table.md`` and ``protocol.png`` into the folder.

    python scripts/report_protocols.py runs/bench/fashion_mnist_label_noise
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def cell_metrics(folder: Path) -> tuple[dict, list[dict]]:
    from topodata.bench.results import read_results
    from topodata.data import load_dataset

    protocol = json.loads((folder / "protocol.json").read_text())
    spec = protocol["dataset"]
    info = load_dataset(spec, progress=False).info
    rows = []
    for r in read_results(folder / "results.csv"):
        row = dict(r)
        idx_path = folder / "cells" / r["cell_id"] / "indices.npy"
        if r["method"] != "full" and idx_path.is_file():
            kept = np.load(idx_path)
            if "flipped" in info:
                row["wrong"] = float(info["flipped"][kept].mean())
            if "dup_group" in info:
                n_images = int(info["dup_group"].max()) + 1
                row["distinct"] = np.unique(info["dup_group"][kept]).size / min(kept.size, n_images)
        elif r["method"] == "full":
            if "flipped" in info:
                row["wrong"] = float(info["flipped"].mean())
            if "dup_group" in info:
                row["distinct"] = 1.0
        rows.append(row)
    return {"dataset": spec}, rows


def table(rows: list[dict]) -> tuple[str, dict]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("experiment") in ("main", "full"):
            groups[(r["method"], r["rate"] if r["method"] != "full" else None)].append(r)
    full = [r["accuracy"] for r in groups.get(("full", None), [])]
    full_mean = float(np.mean(full)) if full else float("nan")
    rates = sorted({k[1] for k in groups if k[1] is not None})
    methods = [m for m in dict.fromkeys(k[0] for k in groups) if m != "full"]
    cols = [c for c in ("wrong", "distinct") if any(c in r for r in rows)]
    lines = ["| method | rate | accuracy (%) | vs random | gap recovered | " + " | ".join(cols) + " |",
             "|---|---|---|---|---|" + "---|" * len(cols)]
    summary = {}
    for rate in rates:
        rand = [r["accuracy"] for r in groups.get(("random", rate), [])]
        rand_mean = float(np.mean(rand)) if rand else float("nan")
        for m in methods:
            g = groups.get((m, rate))
            if not g:
                continue
            acc = np.array([r["accuracy"] for r in g])
            gap = (acc.mean() - rand_mean) / (full_mean - rand_mean) if full_mean != rand_mean else float("nan")
            extra = []
            for c in cols:
                v = np.array([r[c] for r in g if c in r])
                extra.append(f"{100 * v.mean():.1f}%" if v.size else "")
            lines.append(f"| {m} | {rate} | {100 * acc.mean():.2f} ± {100 * acc.std():.2f} (n={acc.size}) | "
                         f"{100 * (acc.mean() - rand_mean):+.2f} | {gap:+.2f} | " + " | ".join(extra) + " |")
            summary[(m, rate)] = (acc.mean(), acc.std(), {c: e for c, e in zip(cols, extra)})
    if full:
        extra = [(f"{100 * np.mean([r['wrong'] for r in groups[('full', None)]]):.1f}%" if c == "wrong"
                  else "100.0%") for c in cols]
        lines.append(f"| full data | – | {100 * full_mean:.2f} ± {100 * np.std(full):.2f} (n={len(full)}) | | 1 | "
                     + " | ".join(extra) + " |")
    return "\n".join(lines) + "\n", summary


def plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in dict.fromkeys(k[0] for k in summary):
        pts = sorted((rate, v[0], v[1]) for (mm, rate), v in summary.items() if mm == m)
        r, mu, sd = map(np.array, zip(*pts))
        ax.errorbar(r, 100 * mu, yerr=100 * sd, marker="o", capsize=3, label=m)
    ax.set_xlabel("rate (fraction removed)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="a bench results folder (holds results.csv and protocol.json)")
    args = p.parse_args(argv)
    if not (args.folder / "results.csv").is_file():
        print(f"report_protocols: no results.csv in {args.folder}", file=sys.stderr)
        return 2
    meta, rows = cell_metrics(args.folder)
    text, summary = table(rows)
    head = f"## {meta['dataset']} ({args.folder.name})\n\n"
    print(head + text)
    (args.folder / "protocol_table.md").write_text(head + text)
    if summary:
        plot(summary, args.folder / "protocol.png", meta["dataset"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
