"""Score extrapolation on Fashion-MNIST: score a fraction, predict the rest (kNN and GNN), per method.

Three measurements (issue 11), all from this one script:

1. ``corr``: for each fraction, extrapolator and method, the Spearman and Pearson correlation of
   the extrapolated scores with the full-data scores (proxy trained on all 60,000 samples, every
   sample scored) on the samples that were *not* scored, plus the extrapolator's own validation
   Spearman and ``scored_spearman``, the same correlation on the scored samples themselves (the
   fraction proxy's scores against the full proxy's: the ceiling of any extrapolation, the paper's
   r = 0.88 between two full runs); and the wall time of the whole selection (proxy training and feature extraction on
   the fraction + scoring the fraction + extrapolation + subset) against full scoring (proxy on
   all data + scoring all + subset). The proxy times are those the embed stage measured when it
   trained each proxy (its manifest, ``timings_s.train`` + ``extract``; run ``--part embed``
   first in the same session so that both are measured under the same load); scoring and
   extrapolation are timed here.
2. ``acc``: test accuracy of the rate-0.9 subsets under the README's 2,000-step protocol
   (pipelines/fashion_mnist_long.toml: small CNN, batch 128, one-cycle SGD peak 0.05, the cell's
   seed for selection and training) for the extrapolated selections of ``acc_methods`` at
   ``acc_fraction`` against full scoring, random and the full training split.
3. a table per part on stdout, ``results.json`` and the script in ``--out``, and the figure
   ``--plot`` (default docs/extrapolation.png).

    python scripts/bench_extrapolation.py --part embed      # the four proxies (cached)
    python scripts/bench_extrapolation.py --part corr --out runs/bench_extrapolation
    python scripts/bench_extrapolation.py --part acc  --out runs/bench_extrapolation

Rows are saved after each unit of work and a rerun with the same ``--out`` skips them, so a stopped
run resumes. Run it with ``TOPODATA_THREADS=1`` (and ``nice``) on a shared machine.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from _bench import parse_hyp, print_table, save_results

hyp = {
    "dataset": "fashion-mnist",  # dataset name (topodata.data)
    "fractions": "0.05,0.1,0.2",  # fractions of the training split scored, comma-separated
    "methods": "el2n,forgetting,aum,ccs,d2,topoprune",  # scoring methods of the corr part, comma-separated
    "extrapolators": "knn,gnn",  # extrapolators of the corr part: knn, gnn
    "gnn_fractions": "0.05,0.1,0.2",  # the GNN is the expensive extrapolator on a CPU: restrict it here
    "gnn_methods": "el2n,forgetting,aum,ccs,d2,topoprune",  # (ccs's default score is aum's)
    "gnn_epochs": 100,  # training epochs of the GNN extrapolator
    "gnn_hidden": "128,64",  # the paper's 512,256 costs ~13 s an epoch at 60,000 nodes on one contended core
    "rate": 0.9,  # fraction removed
    "selection_seed": 0,  # the seed of the corr part's selections
    "acc_methods": "topoprune,el2n",  # methods whose extrapolated subsets are trained (acc part)
    "acc_fraction": 0.1,  # fraction scored in the acc part
    "acc_extrapolators": "knn",  # extrapolators of the acc part
    "seeds": "0,1,2",  # selection and training seeds of the acc part
    "ref_seeds": "0,1,2",  # seeds of the random and full-data arms (they do not depend on extrapolation)
    "steps": 2000,  # pipelines/fashion_mnist_long.toml
    "batch_size": 128,  # training batch size (acc part)
    "lr": 0.05,  # peak learning rate of the one-cycle SGD (acc part)
    "part": "corr",  # embed | corr | acc | table
    # proxy seconds per fraction, "1.0:226,0.1:180", to replace the cache manifests' (a cache entry
    # rewritten by another run carries that run's time): all proxies timed in one process, in a row
    "proxy_seconds": "",  # '1.0:226,0.1:180': proxy seconds per fraction, replacing the cache manifests'
    "plot": "docs/extrapolation.png",  # where the figure is written
}


def _list(text: str, cast=str) -> list:
    return [cast(t) for t in str(text).split(",") if t.strip()]


def _rows(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.is_file() else []


def _save_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1) + "\n")
    tmp.replace(path)


def _embedding(h, fraction: float):
    from topodata.pipeline import load_embedding

    return load_embedding(h["dataset"], proxy_fraction=fraction, embed_seed=0, progress=False)


def _proxy_seconds(emb) -> float:
    t = emb.manifest["timings_s"]
    return float(t["train"] + t["extract"])


def _select(h, emb, method, seed, fraction=None, extrapolator=None):
    from topodata.pipeline import select_dataset

    kw = {}
    if fraction is not None:
        kw = dict(score_fraction=fraction, extrapolate=extrapolator,
                  extrapolate_params={"epochs": h["gnn_epochs"], "hidden": tuple(_list(h["gnn_hidden"], int))}
                  if extrapolator == "gnn" else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        res = select_dataset(h["dataset"], rate=h["rate"], method=method, random_state=seed, embedding=emb,
                             proxy_fraction=1.0 if fraction is None else fraction, progress=False, **kw)
    return res, time.perf_counter() - t0


def part_embed(h):
    rows = []
    for f in [1.0, *_list(h["fractions"], float)]:
        emb = _embedding(h, f)
        m = emb.manifest
        rows.append({"proxy_fraction": f, "n_proxy": m["n_proxy"], "epochs": m["epochs"], "steps": m["steps"],
                     "train_s": m["timings_s"]["train"], "extract_s": m["timings_s"]["extract"],
                     "proxy_test_acc": m["proxy_test_accuracy"]})
    print_table(rows, "proxies (embed stage, cached)")
    return rows


def part_corr(h, out: Path):
    from scipy.stats import pearsonr, spearmanr

    path = out / "corr_rows.json"
    rows = _rows(path)
    done = {(r["method"], r["fraction"], r["extrapolator"]) for r in rows}
    full = _embedding(h, 1.0)
    seed = h["selection_seed"]
    fulls = {}
    for method in _list(h["methods"]):
        key = (method, 1.0, "none")
        if key in done:
            fulls[method] = np.load(out / f"full_scores_{method}.npy")
            continue
        res, secs = _select(h, full, method, seed)
        fulls[method] = res.scores
        np.save(out / f"full_scores_{method}.npy", res.scores)
        rows.append({"method": method, "fraction": 1.0, "extrapolator": "none", "spearman": 1.0, "pearson": 1.0,
                     "val_spearman": None, "proxy_s": _proxy_seconds(full), "select_s": secs,
                     "total_s": _proxy_seconds(full) + secs, "share_of_full": 1.0})
        _save_rows(path, rows)
        print(f"full {method}: {secs:.1f} s", flush=True)
    for f in _list(h["fractions"], float):
        emb = _embedding(h, f)
        unscored = np.isnan(emb.dynamics.margin).all(axis=0)
        for ex in _list(h["extrapolators"]):
            if ex == "gnn" and f not in _list(h["gnn_fractions"], float):
                continue
            for method in _list(h["methods"]):
                if (method, f, ex) in done or (ex == "gnn" and method not in _list(h["gnn_methods"])):
                    continue
                res, secs = _select(h, emb, method, seed, f, ex)
                info = res.manifest["params"]["extrapolation"]
                # NaN outside the near-duplicate pool (TopoPrune's default dedup scores only the pool)
                ok = np.isfinite(res.scores) & np.isfinite(fulls[method])
                a, b = res.scores[unscored & ok], fulls[method][unscored & ok]
                own = spearmanr(res.scores[~unscored & ok], fulls[method][~unscored & ok]).statistic
                full_total = next(r["total_s"] for r in rows if r["method"] == method and r["fraction"] == 1.0)
                total = _proxy_seconds(emb) + secs
                rows.append({
                    "method": method, "fraction": f, "extrapolator": ex,
                    "spearman": float(spearmanr(a, b).statistic), "pearson": float(pearsonr(a, b).statistic),
                    "val_spearman": info["validation_spearman"], "scored_spearman": float(own),
                    "n_compared": int(a.size), "proxy_s": _proxy_seconds(emb), "select_s": secs,
                    "extrapolate_s": res.manifest["timings_s"].get(f"{method}.extrapolate"),
                    "total_s": total, "share_of_full": total / full_total,
                })
                _save_rows(path, rows)
                r = rows[-1]
                print(f"{method} f={f} {ex}: spearman {r['spearman']:.3f} pearson {r['pearson']:.3f} "
                      f"val {r['val_spearman']:.3f} select {secs:.1f} s share {r['share_of_full']:.2f}", flush=True)
    return rows


def part_acc(h, out: Path):
    from topodata.data import load_dataset
    from topodata.train.subset import train_on_subset

    path = out / "acc_rows.json"
    rows = _rows(path)
    done = {(r["arm"], r["seed"]) for r in rows}
    ds = load_dataset(h["dataset"], progress=False)
    full = _embedding(h, 1.0)
    frac = _embedding(h, h["acc_fraction"])
    arms = [("full data", None), ("random", ("random", None, None))]
    for m in _list(h["acc_methods"]):
        arms.append((f"{m} (full scoring)", (m, None, None)))
        for ex in _list(h["acc_extrapolators"]):
            arms.append((f"{m} ({ex}, {h['acc_fraction']})", (m, h["acc_fraction"], ex)))
    for seed in _list(h["seeds"], int):
        for arm, what in arms:
            if (arm, seed) in done or (arm in ("full data", "random") and seed not in _list(h["ref_seeds"], int)):
                continue
            idx, secs = None, 0.0
            if what is not None:
                method, f, ex = what
                res, secs = _select(h, full if f is None else frac, method, seed, f, ex)
                idx = res.indices
            m = train_on_subset(ds, idx, model="smallcnn", steps=h["steps"], batch_size=h["batch_size"], lr=h["lr"],
                                random_state=seed, device="auto", progress=False)
            rows.append({"arm": arm, "seed": seed, "n_train": m["n_train"], "accuracy": m["accuracy"],
                         "select_s": secs, "train_s": m["seconds"]})
            _save_rows(path, rows)
            print(f"{arm} seed {seed}: acc {m['accuracy']:.4f} ({m['seconds']:.0f} s)", flush=True)
    return rows


def summarise(h, out: Path) -> dict:
    corr, acc = _rows(out / "corr_rows.json"), _rows(out / "acc_rows.json")
    if h["proxy_seconds"]:
        given = {float(k): float(v) for k, v in (t.split(":") for t in _list(h["proxy_seconds"]))}
        for r in corr:
            r["proxy_s"] = given.get(r["fraction"], r["proxy_s"])
            r["total_s"] = r["proxy_s"] + r["select_s"]
        for r in corr:
            full_total = next(q["total_s"] for q in corr if q["method"] == r["method"] and q["fraction"] == 1.0)
            r["share_of_full"] = r["total_s"] / full_total
    if corr:
        print_table([{k: r.get(k) for k in ("method", "fraction", "extrapolator", "spearman", "pearson",
                                             "scored_spearman", "val_spearman", "select_s", "total_s",
                                             "share_of_full")}
                     for r in corr], "extrapolated vs full-data scores on the unscored samples; wall time")
    acc_summary = []
    if acc:
        for arm in dict.fromkeys(r["arm"] for r in acc):
            a = np.array([r["accuracy"] for r in acc if r["arm"] == arm])
            acc_summary.append({"arm": arm, "n_seeds": int(a.size), "mean": float(a.mean() * 100),
                                "std": float(a.std(ddof=1) * 100) if a.size > 1 else float("nan")})
        print_table(acc_summary, f"test accuracy (%) at rate {h['rate']}, {h['steps']} steps")
    return {"corr": corr, "acc": acc, "acc_summary": acc_summary}


def plot(h, summary: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corr = [r for r in summary["corr"] if r["extrapolator"] != "none"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for i, method in enumerate(dict.fromkeys(r["method"] for r in corr)):
        for ex, style in (("knn", "-o"), ("gnn", "--s")):
            pts = sorted((r["fraction"], r["spearman"]) for r in corr if r["method"] == method and r["extrapolator"] == ex)
            if pts:
                ax.plot(*zip(*pts), style, color=f"C{i}", label=f"{method} {ex}")
    ax.axhline(0.8, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("scored fraction")
    ax.set_ylabel("Spearman vs full-data scores (unscored samples)")
    ax.legend(fontsize=7, ncol=2)
    ax = axes[1]
    acc = summary["acc_summary"]
    if acc:
        ax.barh(range(len(acc)), [a["mean"] for a in acc], xerr=[a["std"] for a in acc], color="C0")
        ax.set_yticks(range(len(acc)), [a["arm"] for a in acc], fontsize=8)
        lo = min(a["mean"] for a in acc)
        ax.set_xlim(lo - 2, max(a["mean"] for a in acc) + 1)
        ax.set_xlabel(f"test accuracy (%), rate {h['rate']}, {h['steps']} steps, mean ± std over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


def main(argv=None) -> int:
    h, args = parse_hyp(hyp, __doc__, argv)
    out = args.out or Path("runs") / "bench_extrapolation"
    out.mkdir(parents=True, exist_ok=True)
    if h["part"] == "embed":
        part_embed(h)
        return 0
    if h["part"] == "corr":
        part_corr(h, out)
    elif h["part"] == "acc":
        part_acc(h, out)
    summary = summarise(h, out)
    save_results(out, {"hyp": h, **summary}, __file__)
    if h["plot"]:
        plot(h, summary, h["plot"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
