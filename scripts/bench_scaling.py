"""Benchmark: time per stage and peak memory of ``select`` (TopoPrune) from 60,000 to 1,000,000 rows.

Data: the cached Fashion-MNIST proxy features (small CNN, 128-d, 60,000 rows; made once by
:func:`topodata.pipeline.load_embedding`), tiled to ``n`` rows; every copy after the first gets
Gaussian jitter of ``jitter`` x each feature's standard deviation (seeded); labels are carried.
Each (n, engine) runs in its own subprocess (so ``ru_maxrss`` is that run's peak resident memory,
and numba's compilations come from the disk cache as in a second CLI call), with the caller's
``TOPODATA_THREADS`` (default 1; the OpenMP and BLAS thread counts follow it unless set). Results are appended to ``results.jsonl`` as each run ends, so a long run
can be read (and resumed: finished cells are skipped) while it goes on.

Per run: the manifest's stages, and a finer split measured by wrapping the library's kNN, UMAP fit
and placement calls (seconds and rows of each call); the recall@15 of the approximate feature kNN
graph against exact search on ``recall_queries`` rows (measured after the run, not part of its
time or memory). The table gives the exponent ``b`` of total time ~ a n^b fitted over the sizes.

Usage::

    TOPODATA_THREADS=2 python scripts/bench_scaling.py --out runs/bench_scaling   # 60k, 250k, 1M x inprocess
    python scripts/bench_scaling.py --sizes 60000,120000 --engines inprocess,ray --out runs/s
    python scripts/bench_scaling.py --out runs/bench_scaling --plot-only             # table + plot again

``--legacy`` runs the code as it was before the scaling work (UMAP on all rows, IVF probing 1/8 of
its lists) to measure where the time went.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _bench import parse_hyp, parse_options, print_table, save_results

hyp = {
    "sizes": "60000,250000,1000000",  # rows, comma-separated
    "engines": "inprocess",  # comma-separated: inprocess, ray
    "rate": 0.9,  # fraction removed
    "seed": 0,  # selection seed (and jitter seed)
    "jitter": 0.05,  # std of the jitter on tiled copies, in units of each feature's std
    "umap_fit_size": 100_000,  # TopoPrune's --umap-fit-size (0 = fit UMAP on all rows)
    "params": "",  # more TopoPrune options, 'k=v,k=v' (e.g. 'knn_method=ivf,umap_init=pca')
    "recall_queries": 2_000,  # rows whose approximate feature kNN is checked against exact search
    "ray_cpus": 2,  # CPUs of the local Ray started for engine=ray
    "timeout_s": 3600,  # per run
}


def tiled_features(n: int, jitter: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of the Fashion-MNIST proxy features: copies of the 60,000, jittered after the first."""
    from topodata.pipeline import load_embedding

    emb = load_embedding("fashion-mnist", progress=False)
    base, y0 = np.asarray(emb.features, dtype=np.float32), np.asarray(emb.labels)
    reps = -(-n // base.shape[0])
    x = np.tile(base, (reps, 1))[:n]
    y = np.tile(y0, reps)[:n]
    if n > base.shape[0]:
        rng = np.random.default_rng(seed)
        sd = base.std(axis=0).astype(np.float32)
        for s in range(base.shape[0], n, 100_000):  # in blocks: no n x 128 float64 temporary
            e = min(n, s + 100_000)
            x[s:e] += (rng.standard_normal((e - s, base.shape[1]), dtype=np.float32) * (jitter * sd))
    return x, y


class _Timer:
    """Wraps library functions to record (name, rows, seconds) of each call: the fine stage split."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def wrap(self, owner, attr: str, name: str, rows=lambda a, k: len(a[0])):
        fn = getattr(owner, attr)

        def timed(*a, **k):
            t, c = time.perf_counter(), time.process_time()
            out = fn(*a, **k)
            self.calls.append({"stage": name, "rows": int(rows(a, k)), "s": time.perf_counter() - t,
                               "cpu_s": time.process_time() - c})
            return out

        setattr(owner, attr, timed)


def child(n: int, engine: str, h: dict, legacy: bool) -> dict:
    """One run, in this (sub)process: select on n tiled rows; returns the measurements."""
    import topodata
    import topodata.manifold as manifold
    import topodata.neighbors as neighbors
    import umap.umap_ as umap_

    t0 = time.perf_counter()
    x, y = tiled_features(n, h["jitter"], h["seed"])
    t_data = time.perf_counter() - t0
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if legacy:
        neighbors.IVF_SCAN = 10**12  # nprobe = nlist / 8 as before
    timer = _Timer()
    timer.wrap(neighbors, "knn", "knn")  # feature graph, dedup, 8-d kNNs (imported on use)
    timer.wrap(manifold, "_knn", "umap_knn")  # the kNN graph UMAP is fitted on
    timer.wrap(umap_.UMAP, "fit_transform", "umap_fit", rows=lambda a, k: len(a[1]))
    timer.wrap(umap_, "spectral_layout", "umap_spectral_init", rows=lambda a, k: a[1].shape[0])
    timer.wrap(umap_, "optimize_layout_euclidean", "umap_epochs")
    timer.wrap(manifold, "place_on_manifold", "placement", rows=lambda a, k: len(a[2]))
    if engine == "ray":
        import ray

        from topodata._ray import LOCAL_SYSTEM_CONFIG

        ray.init(num_cpus=h["ray_cpus"], include_dashboard=False, log_to_driver=False,
                 _system_config=LOCAL_SYSTEM_CONFIG)
    params = {"umap_fit_size": 0 if legacy else h["umap_fit_size"], **parse_options(h["params"])}
    t0, c0 = time.perf_counter(), time.process_time()
    res = topodata.select(x, y, rate=h["rate"], random_state=h["seed"], engine=engine, method_params=params)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    out = {"n": n, "engine": engine, "legacy": legacy, "wall_s": wall, "cpu_s": cpu, "data_s": t_data,
           "peak_rss_gb": rss, "load_avg_1m": os.getloadavg()[0], "threads": os.environ.get("TOPODATA_THREADS"),
           "rss_after_data_gb": rss_data, "timings_s": res.manifest["timings_s"], "calls": timer.calls,
           "n_kept": int(res.indices.size), "indices_sha": _sha(res.indices)}
    if engine == "ray":
        import ray

        out["ray"] = res.manifest.get("engine")
        ray.shutdown()
    out["recall"] = _recall(x, h) if n > neighbors.EXACT_MAX_SAMPLES else None
    return out


def _sha(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def _recall(x: np.ndarray, h: dict) -> dict:
    """recall@15 of the feature graph's IVF index (as ``knn(method='auto')`` builds it) against exact search."""
    from topodata.neighbors import KnnIndex, l2_normalize

    f = l2_normalize(x)
    rng = np.random.default_rng(h["seed"])
    q = np.sort(rng.choice(f.shape[0], size=h["recall_queries"], replace=False))
    t = time.perf_counter()
    index = KnnIndex("ivf", random_state=1).fit(f)
    approx, _ = index.query(f[q], 15)
    t_ivf = time.perf_counter() - t
    exact, _ = KnnIndex("exact").fit(f).query(f[q], 15)
    hits = [np.intersect1d(a, e).size for a, e in zip(approx, exact)]
    return {"recall_at_15": float(np.sum(hits) / exact.size), "queries": int(q.size),
            "nlist": int(index.index_.nlist), "nprobe": int(index.index_.nprobe), "build_and_query_s": t_ivf}


def run_all(h: dict, out: Path, legacy: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    log = out / "results.jsonl"
    done = set()
    if log.exists():
        for line in log.read_text().splitlines():
            r = json.loads(line)
            done.add((r["n"], r["engine"], r.get("legacy", False)))
    for n in [int(s) for s in h["sizes"].split(",")]:
        for engine in h["engines"].split(","):
            if (n, engine, legacy) in done:
                continue
            cmd = [sys.executable, __file__, "--child", f"{n}:{engine}:{int(legacy)}",
                   *[a for k, v in h.items() for a in (f"--{k.replace('_', '-')}", str(v))]]
            threads = os.environ.get("TOPODATA_THREADS", "1")
            env = {**os.environ, "TOPODATA_THREADS": threads,
                   "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads),
                   "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS", threads)}
            print(f"run n={n} engine={engine} legacy={legacy} ...", flush=True)
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=h["timeout_s"])
            except subprocess.TimeoutExpired:
                rec = {"n": n, "engine": engine, "legacy": legacy, "error": f"timeout {h['timeout_s']} s"}
            else:
                lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
                rec = json.loads(lines[-1][7:]) if lines else {
                    "n": n, "engine": engine, "legacy": legacy, "error": p.stderr[-2000:]}
            with log.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(json.dumps({k: rec.get(k) for k in ("n", "engine", "wall_s", "peak_rss_gb", "error")}), flush=True)


STAGES = ("knn", "umap_knn", "umap_spectral_init", "umap_epochs", "umap_fit", "placement")


def _split(rec: dict, key: str = "s") -> dict:
    """Seconds (wall ``s`` or process CPU ``cpu_s``) per fine stage, summed over calls."""
    out: dict[str, float] = {}
    for c in rec.get("calls", []):
        out[c["stage"]] = out.get(c["stage"], 0.0) + c.get(key, float("nan"))
    return out


def report(out: Path) -> list[dict]:
    recs = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines()]
    recs.sort(key=lambda r: (r["engine"], r.get("legacy", False), r["n"]))
    rows, cpu_rows = [], []
    for r in recs:
        if "error" in r:
            print(f"n={r['n']} engine={r['engine']} legacy={r.get('legacy', False)}: {r['error'][-300:]}")
            continue
        t, s, cs = r["timings_s"], _split(r), _split(r, "cpu_s")
        rows.append({
            "n": r["n"], "engine": r["engine"], "legacy": r.get("legacy", False), "total_s": t["total"],
            "cpu_s": r.get("cpu_s", float("nan")), "load_1m": r.get("load_avg_1m", float("nan")),
            "manifold_s": t.get("topoprune.manifold", 0.0), "feature_knn_s": s.get("knn", 0.0),
            "umap_knn_s": s.get("umap_knn", 0.0), "umap_fit_s": s.get("umap_fit", 0.0),
            "spectral_s": s.get("umap_spectral_init", 0.0), "placement_s": s.get("placement", 0.0),
            "local_topology_s": t.get("topoprune.local_topology", 0.0),
            "displacement_s": t.get("topoprune.displacement", 0.0), "dedup_s": t.get("dedup", 0.0),
            "peak_rss_gb": r["peak_rss_gb"], "threads": r.get("threads"),
            "recall@15": r["recall"]["recall_at_15"] if r.get("recall") else "exact",
        })
        cpu_rows.append({"n": r["n"], "engine": r["engine"], "legacy": r.get("legacy", False),
                         **{f"{k}_cpu_s": cs.get(k, 0.0) for k in STAGES}})
    print_table(rows, "select (TopoPrune, rate 0.9) on tiled Fashion-MNIST features, 128-d (wall s; cpu_s = "
                      "the driver's CPU seconds, summed over its threads)")
    print_table(cpu_rows, "CPU seconds per wrapped call kind (driver process)")
    fits = []
    for engine in sorted({r["engine"] for r in rows}):
        for legacy in (False, True):
            for key in ("total_s", "cpu_s"):
                pts = [(r["n"], r[key]) for r in rows if r["engine"] == engine and r["legacy"] == legacy
                       and r["total_s"] != "error" and np.isfinite(r.get(key, np.nan))]
                if len(pts) >= 2:
                    b, a = np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)
                    fits.append({"engine": engine, "legacy": legacy, "time": key, "sizes": len(pts),
                                 "exponent_b": float(b), "s_at_1M_rows": float(np.exp(a) * 1e6 ** b)})
    print_table(fits, "total time ~ a n^b (least squares in log-log)")
    _plot(rows, out / "scaling.png")
    return rows


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["total_s"] != "error"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for (engine, legacy) in sorted({(r["engine"], r["legacy"]) for r in ok}):
        pts = sorted((r["n"], r["total_s"], r["peak_rss_gb"], r["cpu_s"]) for r in ok
                     if (r["engine"], r["legacy"]) == (engine, legacy))
        label = engine + (" (before: UMAP on all rows)" if legacy else "")
        ax.loglog([p[0] for p in pts], [p[1] for p in pts], "o-", label=label + ", wall")
        ax.loglog([p[0] for p in pts], [p[3] for p in pts], "s--", label=label + ", CPU")
        ax2.semilogx([p[0] for p in pts], [p[2] for p in pts], "o-", label=label)
    threads = sorted({str(r.get("threads")) for r in ok} - {"None"})
    ax.set(xlabel="rows", ylabel="select total (s)",
           title="time" + (f" ({', '.join(threads)} thread(s))" if threads else ""))
    ax2.set(xlabel="rows", ylabel="peak RSS (GB)", title="peak resident memory")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    child_spec = None
    if "--child" in args_in:
        i = args_in.index("--child")
        child_spec = args_in[i + 1]
        del args_in[i : i + 2]
    legacy = "--legacy" in args_in
    plot_only = "--plot-only" in args_in
    args_in = [a for a in args_in if a not in ("--legacy", "--plot-only")]
    h, args = parse_hyp(hyp, __doc__, args_in, out_help="folder for results.jsonl, scaling.png and a copy of the script")
    if child_spec is not None:
        n, engine, leg = child_spec.split(":")
        rec = child(int(n), engine, h, bool(int(leg)))
        print("RESULT " + json.dumps(rec), flush=True)
        return 0
    out = args.out or Path("runs/bench_scaling")
    if not plot_only:
        run_all(h, out, legacy)
    rows = report(out)
    save_results(out, {"hyp": h, "rows": rows}, __file__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
