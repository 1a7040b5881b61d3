"""Report: IMP vs T-IMP (LeNet-300-100 or the small CNN), and the spanning-tree overlap bound.

For every dataset, seed and mode (``imp``, ``timp``) this runs :func:`topodata.weights.iterative_pruning`
from the same initialisation and data order, and records per round the test accuracy, the mean
normalised neural persistence and the fraction of the trained network's maximum spanning tree that
the round's mask keeps. It prints mean ± std tables over seeds, writes ``report.png`` (accuracy, NP
and tree retention against the weights remaining) and ``report.md``, and prints the Balwani–Krzyston
lower bound on the expected fraction of a layer's spanning tree inside its top-alpha weights next to
the overlap measured on the trained dense network (round 0) and on the final pruned networks (bound
with the layer's density). A conv layer's graph is its in-channel x out-channel graph (``conv =
'aggregate'``), so its bound uses m = C_in, n = C_out, and its density is kept / all weights.

Each run's rows go to ``OUT/<dataset>/<mode>_seed<seed>.csv`` as soon as it finishes; a rerun
skips finished runs, so the report can be built in pieces (e.g. ``--datasets fashion-mnist`` first).

Usage::

    nice python scripts/report_timp.py --out runs/report_timp
    nice python scripts/report_timp.py --datasets mnist --seeds 0 --rounds 3 --epochs 1   # quick look
    nice python scripts/report_timp.py --model smallcnn --datasets fashion-mnist --out runs/report_timp_cnn
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

# Every knob of the report (airbench style); each is also a command-line flag.
hyp = {
    "datasets": "fashion-mnist,mnist",  # comma-separated dataset specs
    "seeds": "0,1,2",  # comma-separated seeds (initialisation + data order)
    "modes": "imp,timp",
    "model": "lenet300100",
    "target_sparsity": 0.98,  # fraction of weights removed after the last round
    "rounds": 8,  # pruning rounds (each removes 1 - 0.02^(1/8) = 38.7% of the remaining weights)
    "epochs": 2,  # epochs per (re)training
    "rewind_step": 50,  # optimiser steps of the first training to rewind to
    "scope": "global",  # magnitude threshold over the whole network
    "batch_size": 128,
    "augment": "none",  # the lottery-ticket setting for LeNet
    "threads": 1,  # torch intra-op threads (the machine is shared)
    "device": "auto",  # cuda when present, else cpu
    "max_train": 0,  # first N training samples only (0 = all); for rehearsals
}


def run_one(ds, seed: int, mode: str, h: dict) -> tuple[list[dict], str]:
    from topodata.nn import build_model
    from topodata.weights import iterative_pruning

    model = build_model(h["model"], ds.input_shape, ds.n_classes, random_state=seed)
    n = h["max_train"] or len(ds.x_train)
    res = iterative_pruning(
        model, ds.x_train[:n], ds.y_train[:n], ds.x_test, ds.y_test, target_sparsity=h["target_sparsity"],
        rounds=h["rounds"], mode=mode, scope=h["scope"], epochs=h["epochs"], rewind_step=h["rewind_step"],
        random_state=seed, fit_params={"batch_size": h["batch_size"], "augment": h["augment"]},
        device=h["device"],
    )
    return res.rounds, res.to_csv()


def read_rows(path: Path) -> list[dict]:
    with path.open() as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def mean_std(values) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.4f} ± {a.std(ddof=1) if a.size > 1 else 0.0:.4f}"


def summarise(runs: dict, dataset: str, modes: list[str]) -> list[str]:
    """Markdown table: one row per round, mean ± std over seeds for each mode."""
    seeds = sorted({s for (d, _, s) in runs if d == dataset})
    n_rounds = min(len(runs[(dataset, m, s)]) for m in modes for s in seeds if (dataset, m, s) in runs)
    head = "| round | remaining % | " + " | ".join(
        f"{what} {m.upper()}" for what in ("test acc", "NP mean", "tree kept") for m in modes) + " |"
    lines = [head, "|" + "---|" * (2 + 3 * len(modes))]
    for r in range(n_rounds):
        some = runs[(dataset, modes[0], seeds[0])][r]
        cells = [str(r), f"{100 * (1 - some['sparsity']):.2f}"]
        for key in ("test_accuracy", "np_mean", "tree_kept"):
            for m in modes:
                cells.append(mean_std([runs[(dataset, m, s)][r][key] for s in seeds if (dataset, m, s) in runs]))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"\n({len(seeds)} seeds: {', '.join(map(str, seeds))})")
    return lines


def bound_table(runs: dict, dataset: str, modes: list[str], shapes: dict[str, tuple[int, int, int]]) -> list[str]:
    from topodata.weights import tree_overlap_lower_bound

    seeds = sorted({s for (d, _, s) in runs if d == dataset})
    lines = ["| layer | m x n | state | density | lower bound E[X] | measured overlap |", "|---|---|---|---|---|---|"]
    for name, (m, n, n_weights) in shapes.items():
        dense = [runs[(dataset, modes[0], s)][0][f"overlap.{name}"] for s in seeds]
        lines.append(f"| {name} | {m}x{n} | trained dense | 1 | {tree_overlap_lower_bound(m, n):.4f} | "
                     f"{mean_std(dense)} |")
        for mode in modes:
            last = [runs[(dataset, mode, s)][-1] for s in seeds if (dataset, mode, s) in runs]
            density = float(np.mean([row[f"kept.{name}"] for row in last])) / n_weights
            try:
                b = f"{tree_overlap_lower_bound(m, n, density=density):.4f}"
            except ValueError:
                b = "n/a (fewer weights than tree edges)"
            lines.append(f"| {name} | {m}x{n} | final {mode.upper()} | {density:.4f} | {b} | "
                         f"{mean_std([row[f'overlap.{name}'] for row in last])} |")
    return lines


def plot(runs: dict, datasets: list[str], modes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("test_accuracy", "test accuracy"), ("np_mean", "mean normalised NP"),
            ("tree_kept", "spanning tree kept by the mask")]
    fig, axes = plt.subplots(len(datasets), 3, figsize=(13, 3.6 * len(datasets)), squeeze=False)
    for i, d in enumerate(datasets):
        for mode in modes:
            seeds = sorted(s for (dd, m, s) in runs if dd == d and m == mode)
            if not seeds:
                continue
            n = min(len(runs[(d, mode, s)]) for s in seeds)
            rem = 100 * (1 - np.array([runs[(d, mode, seeds[0])][r]["sparsity"] for r in range(n)]))
            for j, (key, label) in enumerate(keys):
                v = np.array([[runs[(d, mode, s)][r][key] for r in range(n)] for s in seeds])
                mu, sd = v.mean(0), v.std(0)
                ax = axes[i, j]
                ax.plot(rem, mu, "o-", ms=3, label=mode.upper())
                ax.fill_between(rem, mu - sd, mu + sd, alpha=0.25)
                ax.set_xscale("log")
                ax.set_xlim(rem.max() * 1.1, rem.min() * 0.9)
                ax.set_xlabel("weights remaining (%)")
                ax.set_title(f"{d}: {label}", fontsize=9)
                ax.grid(alpha=0.3)
        axes[i, 0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for key, value in hyp.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--out", type=Path, default=Path("runs/report_timp"))
    args = parser.parse_args(argv)
    h = {k: getattr(args, k) for k in hyp}

    import torch

    torch.set_num_threads(h["threads"])
    from topodata.data import load_dataset
    from topodata.nn import build_model
    from topodata.weights import model_graphs

    datasets, modes = h["datasets"].split(","), h["modes"].split(",")
    seeds = [int(s) for s in h["seeds"].split(",")]
    runs: dict = {}
    wall = {}
    t_all = time.perf_counter()
    for d in datasets:
        t_d = time.perf_counter()
        ds = None
        for seed in seeds:
            for mode in modes:
                path = args.out / d / f"{mode}_seed{seed}.csv"
                if not path.exists():
                    ds = ds or load_dataset(d, progress=False)
                    t0 = time.perf_counter()
                    _, text = run_one(ds, seed, mode, h)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text)
                    print(f"{d} seed {seed} {mode}: {time.perf_counter() - t0:.0f} s", flush=True)
                runs[(d, mode, seed)] = read_rows(path)
        wall[d] = time.perf_counter() - t_d

    probe_ds = load_dataset(datasets[0], progress=False)
    probe = build_model(h["model"], probe_ds.input_shape, probe_ds.n_classes)
    shapes = {g.name: (g.n_in, g.n_out, int(np.prod(g.weight_shape))) for g in model_graphs(probe)}
    md = [f"# IMP vs T-IMP on {h['model']}", "", "hyper-parameters: " + ", ".join(f"{k}={v}" for k, v in h.items()), ""]
    for d in datasets:
        md += [f"## {d}", "", *summarise(runs, d, modes), "",
               "Spanning-tree overlap: fraction of each layer's maximum spanning tree inside its top-alpha "
               "weights (alpha = |MST|); bound of Balwani & Krzyston (density-adjusted for pruned layers).", "",
               *bound_table(runs, d, modes, shapes), "",
               f"wall time for {d} in this invocation: {wall[d]:.0f} s", ""]
    text = "\n".join(md)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(runs, datasets, modes, args.out / "report.png")
    (args.out / "report.md").write_text(text + "\n")
    (args.out / "report_timp.py").write_text(Path(__file__).read_text())
    print(f"total wall time {time.perf_counter() - t_all:.0f} s; wrote {args.out}/report.md, report.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
