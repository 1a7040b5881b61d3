"""Time ``topodata report`` on all 60,000 Fashion-MNIST training images and print a table.

    python scripts/bench_report.py [--repeats 3] [--out runs/bench_report]

The selection is made from precomputed scores (distance to the class mean in pixel space, rate 0.9,
beta 0.075: the coverage cut applies), so no proxy model or UMAP runs; the report's cost does not
depend on how the scores were made. Two feature sources are timed: the raw 784-d pixels (the
report's fallback) and, when ``--embedding DIR`` names a cached embedding (its ``features.npy``),
those features. A synthetic ``dedup_groups.npy`` (pairs of samples) adds the redundancy galleries.
Target (issue 16): under 10 s and under 10 MB. Writes ``results.json`` next to the selection.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_report"))
    ap.add_argument("--embedding", type=Path, default=None, help="a cached embedding folder with features.npy")
    args = ap.parse_args()

    import topodata
    from topodata.data import load_dataset
    from topodata.report import _write_report

    t0, c0 = time.perf_counter(), time.process_time()
    ds = load_dataset("fashion-mnist")
    t_load, c_load = time.perf_counter() - t0, time.process_time() - c0
    x = ds.x_train.reshape(ds.n_train, -1)
    means = np.stack([x[ds.y_train == c].mean(axis=0) for c in range(ds.n_classes)])
    scores = np.linalg.norm(x - means[ds.y_train], axis=1)
    res = topodata.select(None, ds.y_train, rate=0.9, scores=scores, beta=0.075, dataset="fashion-mnist",
                          random_state=0)
    sel = args.out / "fm90"
    topodata.save_selection(res, sel)
    rng = np.random.default_rng(0)
    groups = np.arange(ds.n_train, dtype=np.int64)
    pairs = rng.choice(ds.n_train, size=(3000, 2), replace=False)
    groups[pairs[:, 1]] = pairs[:, 0]
    np.save(sel / "dedup_groups.npy", groups)

    cases = [("pixels (784-d)", None)]
    if args.embedding is not None:
        cases.append((f"embedding {args.embedding.name}", np.load(args.embedding / "features.npy")))
    rows = []
    for name, feats in cases:
        for r in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            path, tim = _write_report(sel, dataset=ds, labels=None, features=feats, root=None, max_per_gallery=24,
                                      max_thumbnails=2400, random_state=0, progress=False)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            rows.append({"features": name, "repeat": r, "wall_s": wall, "cpu_s": cpu,
                         "size_mb": path.stat().st_size / 1e6, **tim})
    print(f"Fashion-MNIST train split: {ds.n_train} samples, dataset load {t_load:.2f} s wall, {c_load:.2f} s CPU "
          "(outside the timing below, where the dataset is passed in; `topodata report DIR` adds it)")
    print("Seconds per stage (wall); CPU = the process's CPU time for the whole call (single-threaded: the wall "
          "time on an idle core)")
    keys = ["load", "plots", "neighbours", "galleries", "write", "total"]
    print(f"| features | repeat | {' | '.join(keys)} | CPU | size (MB) |")
    print("|---" * (len(keys) + 4) + "|")
    for row in rows:
        print(f"| {row['features']} | {row['repeat']} | " + " | ".join(f"{row.get(k, 0):.2f}" for k in keys)
              + f" | {row['cpu_s']:.2f} | {row['size_mb']:.2f} |")
    (args.out / "results.json").write_text(json.dumps({"dataset_load_s": t_load, "dataset_load_cpu_s": c_load, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
