"""Benchmark: neural persistence of a CIFAR ResNet-18, and the critical compression tables.

1. Times :func:`topodata.weights.neural_persistence` on a freshly initialised CIFAR-style ResNet-18
   (21 layer graphs, conv layers as in-channel x out-channel graphs) and on LeNet-300-100, against
   the obvious alternative: scipy's ``minimum_spanning_tree`` on each layer's sparse bipartite graph
   (weights ``2 - w'``, so the minimum tree is the maximum tree of ``w'``), and checks that both
   give the same NP. The first call (imports, allocator warm-up) is reported apart from the best of
   ``repeats`` calls.
2. Prints the topologically critical compression ratio eta_tau per layer and per group for VGG-11
   and ResNet-20 on CIFAR-10 / CIFAR-100 shapes and for ResNet-18 and VGG-11 on 64x64 inputs with
   200 classes (the paper's reading of conv layers; the group summary also under the unrolled
   reading), and plots eta_tau per layer. ``scripts/report_table1.py`` compares them with the paper.

Usage::

    python scripts/bench_weights.py                      # prints tables
    python scripts/bench_weights.py --out runs/bench_weights   # + results.json, eta.png, own source
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
from _bench import best_time, hyp_parser

hyp = {
    "repeats": 3,  # timed calls per setting; the best is reported
    "threads": 1,  # torch intra-op threads
    "seed": 0,  # weight initialisation
}

SETTINGS = [  # (architecture, input shape, classes, label)
    ("vgg11", (3, 32, 32), 10, "CIFAR-10"),
    ("vgg11", (3, 32, 32), 100, "CIFAR-100"),
    ("resnet20", (3, 32, 32), 10, "CIFAR-10"),
    ("resnet20", (3, 32, 32), 100, "CIFAR-100"),
    ("resnet18", (3, 64, 64), 200, "64x64, 200 classes"),
    ("vgg11", (3, 64, 64), 200, "64x64, 200 classes"),
]


def np_scipy(model, p: float = 2.0) -> list[float]:
    """NP per layer with scipy's MST on the sparse layer graphs (global normalisation)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    from topodata.weights import model_graphs

    graphs = model_graphs(model)
    scale = max(g.w.max() for g in graphs)
    out = []
    for g in graphs:
        w = g.w / scale
        # 2 - w' > 0 keeps every edge (scipy drops explicit zeros); min tree of 2 - w' = max tree of w'
        A = coo_matrix((2.0 - w, (g.src, g.n_in + g.dst)), shape=(g.n_vertices,) * 2).tocsr()
        T = minimum_spanning_tree(A).tocoo()
        out.append(float(np.linalg.norm(T.data - 1.0, ord=p)))
    return out



def main(argv: list[str] | None = None) -> int:
    parser = hyp_parser(hyp, __doc__)
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json, eta.png and the source")
    args = parser.parse_args(argv)
    h = {k: getattr(args, k) for k in hyp}

    import torch

    torch.set_num_threads(h["threads"])
    from topodata.nn import build_model
    from topodata.weights import critical_compression, neural_persistence

    results: dict = {"hyp": h, "machine": platform.processor() or platform.machine(), "timings": [], "eta": []}
    print(f"neural persistence timings (torch threads={h['threads']}, best of {h['repeats']})")
    print(f"{'model':<14} {'normalisation':<13} {'layers':>6} {'first s':>8} {'best s':>8} "
          f"{'scipy s':>8} {'ratio':>6} {'max |dNP|':>10}")
    for name, shape in (("resnet18", (3, 32, 32)), ("lenet300100", (1, 28, 28))):
        model = build_model(name, shape, 10, random_state=h["seed"])
        for norm in ("global", "layer"):
            t0 = time.perf_counter()
            neural_persistence(model, normalization=norm)
            first = time.perf_counter() - t0
            best, res = best_time(lambda: neural_persistence(model, normalization=norm), h["repeats"])
            row = {"model": name, "normalization": norm, "layers": len(res.layers), "first_s": first,
                   "best_s": best}
            if norm == "global":
                t_sp, ref = best_time(lambda: np_scipy(model), h["repeats"])
                row.update(scipy_s=t_sp, max_abs_diff=float(np.max(np.abs(np.array(ref) - [x.np for x in res.layers]))))
            results["timings"].append(row)
            sp = f"{row['scipy_s']:>8.3f} {row['scipy_s'] / best:>6.2f} {row['max_abs_diff']:>10.2e}" if "scipy_s" in row else ""
            print(f"{name:<14} {norm:<13} {row['layers']:>6} {first:>8.3f} {best:>8.3f} {sp}")

    print()
    tables = []
    for arch, shape, classes, label in SETTINGS:
        table = critical_compression(arch, input_shape=shape, n_classes=classes)
        table.title = f"{arch} ({label})"
        tables.append(table)
        print(table.table())
        print()
        results["eta"].append(table.to_dict())
    print("summary: eta_tau per group (paper reading | unrolled reading)")
    print(f"{'setting':<36} {'conv':>9} {'dense':>9} {'network':>9} | {'conv':>9} {'dense':>9} {'network':>9}")
    for t, entry, (arch, shape, classes, _) in zip(tables, results["eta"], SETTINGS):
        g = t.groups()
        u = critical_compression(arch, input_shape=shape, n_classes=classes, reading="unrolled").groups()
        entry["unrolled_groups"] = u
        print(f"{t.title:<36} {g.get('conv', float('nan')):>9.4f} {g.get('dense', float('nan')):>9.4f} "
              f"{g['network']:>9.4f} | {u.get('conv', float('nan')):>9.2f} {u.get('dense', float('nan')):>9.2f} "
              f"{u['network']:>9.2f}")

    if args.out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        args.out.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(9, 4.5))
        for t in tables:
            ax.plot([s.ratio(t.reading) for s in t.layers], ".-", label=t.title)
        ax.set_yscale("log")
        ax.set_xlabel("layer (forward order)")
        ax.set_ylabel("eta_tau = |W| / |MST|")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.out / "eta.png", dpi=110)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (args.out / "bench_weights.py").write_text(Path(__file__).read_text())
        print(f"wrote {args.out}/results.json, eta.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
