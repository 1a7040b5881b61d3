"""Benchmark: batched H0 of many small point clouds against a ripser loop.

TopoPrune needs the H0 diagram of every sample's neighbourhood (33 points in an 8-d manifold space
for 60,000 samples). This script times :func:`topodata.topology.h0_point_cloud` on numpy and on
torch (CPU, and CUDA when present) against the obvious alternative, a Python loop calling
``ripser(cloud, maxdim=0)`` per cloud. The loop is run on a sample of clouds (``ripser_sample``) and
extrapolated linearly to B (ripser's cost per cloud does not depend on B); the table says so. It also
checks that the diagrams agree, and times the weight-side call (:func:`spanning_tree_pairs` on a
dense bipartite layer) and ripser's H1 per cloud for reference.

Usage::

    python scripts/bench_persistence.py                 # B = 60000
    python scripts/bench_persistence.py --B 10000 --threads 1 --out runs/bench_persistence

Clouds are i.i.d. Gaussian (the cost of Prim's algorithm does not depend on the geometry).
"""

from __future__ import annotations

import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from _bench import best_time, hyp_parser

# Every knob of the benchmark, with units (airbench style; override with the flags below).
hyp = {
    "B": 60_000,  # number of clouds (neighbourhoods)
    "n": 33,  # points per cloud (the sample + k = 32 neighbours)
    "d": 8,  # dimension of the manifold space
    "ripser_sample": 2_000,  # clouds timed with the ripser loop; extrapolated to B
    "batch_size": 1024,  # clouds per chunk in h0_point_cloud
    "repeats": 3,  # timed runs per batched method; the best is reported
    "threads": 1,  # torch intra-op threads (numpy follows OMP/MKL settings of the process)
    "layer": 512,  # neurons per side of the dense bipartite layer for spanning_tree_pairs
    "seed": 0,  # seed of the random point clouds
}



def main(argv: list[str] | None = None) -> int:
    parser = hyp_parser(hyp, __doc__)
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json and plot")
    args = parser.parse_args(argv)
    h = {k: getattr(args, k) for k in hyp}

    import torch
    from ripser import ripser

    from topodata.topology import h0_point_cloud, spanning_tree_pairs

    torch.set_num_threads(h["threads"])
    rng = np.random.default_rng(h["seed"])
    x = rng.normal(size=(h["B"], h["n"], h["d"])).astype(np.float32)
    sample = x[: min(h["ripser_sample"], h["B"])]

    rows = []
    # ripser loop on the sample, extrapolated to B
    warnings.filterwarnings("ignore", module="ripser")
    t = time.perf_counter()
    ref = [np.sort(ripser(c, maxdim=0)["dgms"][0][:-1, 1]) for c in sample]
    t_sample = time.perf_counter() - t
    t_ripser = t_sample * h["B"] / len(sample)
    rows.append(("ripser loop (maxdim=0)", t_ripser, f"extrapolated from {len(sample)} clouds"))

    t_np, h_np = best_time(lambda: h0_point_cloud(x, batch_size=h["batch_size"]), h["repeats"])
    rows.append(("h0_point_cloud numpy", t_np, ""))
    xt = torch.from_numpy(x)
    t_t, h_t = best_time(lambda: h0_point_cloud(xt, batch_size=h["batch_size"]), h["repeats"])
    rows.append(("h0_point_cloud torch cpu", t_t, f"{h['threads']} thread(s)"))
    if torch.cuda.is_available():
        xc = xt.cuda()
        h0_point_cloud(xc[:10])  # warm-up: CUDA context and kernels

        def on_gpu():
            out = h0_point_cloud(xc, batch_size=None)
            torch.cuda.synchronize()
            return out

        t_c, h_c = best_time(on_gpu, h["repeats"])
        rows.append(("h0_point_cloud torch cuda", t_c, torch.cuda.get_device_name()))
        gpu_err = float(np.abs(h_c.deaths.cpu().numpy() - h_np.deaths).max())
    else:
        gpu_err = None

    # agreement: numpy vs ripser on the sample (ripser works in float32), torch vs numpy on all
    err_ripser = float(np.abs(h_np.deaths[: len(sample)] - np.stack(ref)).max())
    err_torch = float(np.abs(h_t.deaths.numpy() - h_np.deaths).max())
    same_edges = bool(np.array_equal(h_t.edges.numpy(), h_np.edges))

    # weight side: a dense layer of layer x layer weights as a bipartite graph
    m = h["layer"]
    W = np.abs(rng.normal(size=(m, m)))
    W /= W.max()
    u, v = np.repeat(np.arange(m), m), np.tile(np.arange(m), m) + m
    t_layer, (pairs, _) = best_time(
        lambda: spanning_tree_pairs(u, v, W.ravel(), 2 * m, maximum=True), h["repeats"]
    )
    t = time.perf_counter()
    for c in sample[:200]:
        ripser(c, maxdim=1)
    t_h1 = (time.perf_counter() - t) / min(200, len(sample))

    print(f"H0 of B={h['B']} clouds of n={h['n']} points in d={h['d']} (float32), "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print(f"{'method':28s} {'seconds':>9s} {'per cloud':>11s} {'speed-up':>9s}  note")
    for name, sec, note in rows:
        print(f"{name:28s} {sec:9.3f} {sec / h['B'] * 1e6:9.2f}us {t_ripser / sec:8.1f}x  {note}")
    agree = (
        f"max |deaths - ripser| on sample: {err_ripser:.2e}; max |torch - numpy|: {err_torch:.2e}; "
        f"identical edges torch/numpy: {same_edges}"
    )
    print(agree + (f"; max |cuda - numpy|: {gpu_err:.2e}" if gpu_err is not None else ""))
    print(f"spanning_tree_pairs, {m}x{m} dense layer ({2 * m} vertices, {m * m} edges, "
          f"maximum=True): {t_layer * 1e3:.1f} ms, {len(pairs)} pairs")
    print(f"ripser maxdim=1 per cloud (for H1): {t_h1 * 1e3:.3f} ms")

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        result = {
            "hyp": h,
            "seconds": {name: sec for name, sec, _ in rows},
            "max_err_vs_ripser": err_ripser,
            "max_err_torch_vs_numpy": err_torch,
            "layer_ms": t_layer * 1e3,
            "ripser_h1_ms_per_cloud": t_h1 * 1e3,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
        }
        (args.out / "results.json").write_text(json.dumps(result, indent=2))
        (args.out / "bench_persistence.py").write_text(Path(__file__).read_text())  # code with results
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 2.5))
        bars = ax.barh([r[0] for r in rows], [r[1] for r in rows])
        ax.bar_label(bars, labels=[f"{r[1]:.2f} s ({t_ripser / r[1]:.0f}x)" for r in rows], padding=3)
        ax.set_xlim(0, 1.35 * max(r[1] for r in rows))
        ax.set_xlabel(f"seconds for H0 of B={h['B']} clouds of {h['n']} points in {h['d']}-d")
        fig.tight_layout()
        fig.savefig(args.out / "bench_persistence.png", dpi=120)
        print(f"wrote {args.out}/results.json and bench_persistence.png")
    if err_ripser > 1e-5 or not same_edges:
        print("DIAGRAMS DISAGREE", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
