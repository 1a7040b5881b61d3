"""Benchmark of TopoPrune: stage timings, batched local persistence vs a ripser loop, a linear probe,
and the measurements behind its defaults (density handling, neighbourhoods, H1, steps).

Sections (all by default; pick some with flags):

``--density``  the density check (docs/algorithms.md#global-manifold) on :func:`topodata.manifold.density_fixture`
               (per class a dense blob + a sparse noisy circle, 16-d): ratio = mean score of circle
               points / mean score of blob points, mean over ``density_seeds`` fixtures, for each
               global-stage option. > 1 is the wanted order.
``--choices``  digits (scikit-learn, 1,797 × 64 pixels) with ``noise`` of the labels flipped: how
               well the top-β scores find flipped labels (precision at β = 10%, ROC AUC) and the
               test accuracy of a logistic probe on the coverage-selected 10%, for per-class vs
               global neighbourhoods, H1 on/off and the number of steps; plus ripser's H1 cost.
``--main``     Fashion-MNIST small-CNN features (60,000 × D, ``topodata.embed.embed_cached``): time of
               each stage of ``select(rate=0.9)``; the local persistence stage (batched H0) against a
               plain loop calling ``ripser()`` per neighbourhood (run on ``ripser_sample``
               neighbourhoods and extrapolated linearly to all of them, stated in the table), with a
               check that both give the same diagrams; a logistic-regression probe on the kept 10%
               vs a random 10% (``seeds`` seeds, mean ± std), accuracy on the test features.

Usage::

    python scripts/bench_topoprune.py --density --choices
    python scripts/bench_topoprune.py --main --out runs/bench_topoprune

Writes ``results.json``, ``stages.png`` and a copy of this script to ``--out`` (airbench style).
"""

from __future__ import annotations

import platform
import time
import warnings
from pathlib import Path

import numpy as np
from _bench import hyp_parser, print_table, save_results

hyp = {
    "dataset": "fashion-mnist",  # --main: dataset spec for embed_cached
    "model": "smallcnn",  # --main: embedder
    "rate": 0.9,  # fraction removed
    "seeds": 3,  # --main/--choices: selection seeds for the probe (mean ± std)
    "ripser_sample": 1000,  # --main: neighbourhoods timed with the ripser loop, extrapolated to n
    "density_seeds": 3,  # --density: fixtures per option
    "noise": 0.1,  # --choices: fraction of digits labels flipped
    "threads": 1,  # torch intra-op threads
    "probe_c": 1.0,  # inverse L2 strength of the logistic probe
    "probe": 1,  # --main: 0 skips the probe (timings only)
}


# ----------------------------------------------------------------------------- helpers


def _probe(x_train, y_train, x_test, y_test, c: float) -> float:
    """Test accuracy of a logistic regression on standardised features (fit on the subset)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    clf.fit(x_train, y_train)
    return float(clf.score(x_test, y_test))


def _ratio(scores, on_circle) -> float:
    return float(scores[on_circle].mean() / scores[~on_circle].mean())


# ----------------------------------------------------------------------------- sections
DENSITY_OPTIONS = {
    "umap 8-d (plain)": {"manifold": "umap", "density": "none"},
    "umap 8-d + radius (default)": {"manifold": "umap", "density": "radius"},
    "densmap 8-d": {"manifold": "densmap", "density": "none"},
    "densmap 8-d + radius": {"manifold": "densmap", "density": "radius"},
    "umap 2-d (plain)": {"manifold": "umap", "density": "none", "n_components": 2},
    "densmap 2-d": {"manifold": "densmap", "density": "none", "n_components": 2},
    "no UMAP (normalised features)": {"manifold": "none"},
    "umap 8-d + radius, umap-learn's epochs": {"manifold": "umap", "density": "radius", "umap_epochs": 0},
    "umap 8-d + radius, 1 step": {"manifold": "umap", "density": "radius", "steps": 1},
    "umap 8-d + radius, 10 steps": {"manifold": "umap", "density": "radius", "steps": 10},
    "umap 8-d + radius, total_persistence": {"manifold": "umap", "density": "radius",
                                             "score": "total_persistence"},
}


def density_section(h: dict) -> list[dict]:
    from topodata.manifold import density_fixture
    from topodata.scores.topoprune import topoprune

    fixtures = [density_fixture(random_state=s) for s in range(h["density_seeds"])]
    rows = []
    for name, params in DENSITY_OPTIONS.items():
        ratios, secs = [], []
        for s, (x, y, on_circle) in enumerate(fixtures):
            t = time.perf_counter()
            out = topoprune(x, y, budgets={}, rng=np.random.default_rng(s), **params)
            secs.append(time.perf_counter() - t)
            ratios.append(_ratio(out.scores, on_circle))
        rows.append({"option": name, "ratio circle/blob": float(np.mean(ratios)),
                     "min over fixtures": float(np.min(ratios)), "s per run": float(np.mean(secs))})
    print_table(rows, f"density check: mean score circle / blob ({h['density_seeds']} fixtures, 3 classes × "
                 "(300 blob + 100 circle), 16-d)")
    return rows


CHOICES = {
    "per-class neighbourhoods (default)": {},
    "global neighbourhoods": {"neighbourhoods": "global"},
    "H1 on 100% of neighbourhoods": {"h1_fraction": 1.0},
    "H1 on 25%": {"h1_fraction": 0.25},
    "umap-learn's epochs (500)": {"umap_epochs": 0},
    "1 step": {"steps": 1},
    "10 steps": {"steps": 10},
    "k_local 32": {"k_local": 32},
    "density none": {"density": "none"},
    "densmap": {"manifold": "densmap", "density": "none"},
    "densmap + radius": {"manifold": "densmap"},
    "no UMAP": {"manifold": "none"},
}


def choices_section(h: dict) -> list[dict]:
    from _bench import noisy_digits
    from sklearn.metrics import roc_auc_score

    import topodata
    from topodata.scores import METHODS
    from topodata.select import auto_beta

    x_tr, x_te, y_tr, y_te, y_noisy, flip = noisy_digits(h["noise"])
    beta = auto_beta(h["rate"], *METHODS["topoprune"].auto_beta)  # the cut select() applies
    rows = []
    for name, params in {**CHOICES, "random": None}.items():
        accs, precs, aucs, secs = [], [], [], []
        for seed in range(h["seeds"]):
            t = time.perf_counter()
            if params is None:
                res = topodata.select(x_tr, y_noisy, rate=h["rate"], method="random", random_state=seed)
            else:
                res = topodata.select(x_tr, y_noisy, rate=h["rate"], method="topoprune",
                                      random_state=seed, method_params=params)
                top = np.argsort(-res.scores)[: int(beta * len(y_tr))]
                precs.append(float(flip[top].mean()))
                aucs.append(float(roc_auc_score(flip, res.scores)))
            secs.append(time.perf_counter() - t)
            accs.append(_probe(x_tr[res.indices], y_noisy[res.indices], x_te, y_te, h["probe_c"]))
        rows.append({
            "option": name,
            f"flipped in top {beta:.0%}": float(np.mean(precs)) if precs else float("nan"),
            "noise AUC": float(np.mean(aucs)) if aucs else float("nan"),
            "probe acc (mean)": float(np.mean(accs)),
            "probe acc (std)": float(np.std(accs)),
            "s per run": float(np.mean(secs)),
        })
    print_table(rows, f"choices on digits (train 1,257, {h['noise']:.0%} labels flipped, rate {h['rate']}, "
                 f"{h['seeds']} seeds; chance of a flipped label = {flip.mean():.3f})")
    return rows


def main_section(h: dict, out: Path | None) -> dict:
    from ripser import ripser

    import topodata
    from topodata.embed import embed_cached
    from topodata.scores.topoprune import local_neighbourhoods
    from topodata.topology import h0_point_cloud, h1_point_cloud_batch

    t = time.perf_counter()
    emb = embed_cached(h["dataset"], model=h["model"])
    print(f"features {emb.features.shape} (test {emb.features_test.shape}) loaded in "
          f"{time.perf_counter() - t:.1f} s", flush=True)
    x, y = emb.features, emb.labels

    # 1. stage timings of select(rate) in this process (numba's on-disk cache warm after a first run)
    t = time.perf_counter()
    res = topodata.select(x, y, rate=h["rate"], method="topoprune", random_state=0)
    total = time.perf_counter() - t
    stages = [{"stage": k, "seconds": v} for k, v in res.manifest["timings_s"].items()]
    stages.append({"stage": "select() wall", "seconds": total})
    print_table(stages, f"select(rate={h['rate']}) on {h['dataset']} {x.shape} (target total <= 60 s)")

    # 2. local persistence: batched H0 vs a ripser loop on the same neighbourhoods
    z = res.extras["manifold"]
    neigh = local_neighbourhoods(z, y, res.manifest["params"]["k_local"])
    clouds = z[neigh]
    t = time.perf_counter()
    h0 = h0_point_cloud(clouds)
    t_batched = time.perf_counter() - t
    sample = np.random.default_rng(0).choice(len(z), size=min(h["ripser_sample"], len(z)), replace=False)
    t = time.perf_counter()
    ref = [ripser(clouds[i], maxdim=0)["dgms"][0] for i in sample]
    t_loop_sample = time.perf_counter() - t
    t_loop = t_loop_sample * len(z) / len(sample)
    same = all(np.allclose(np.sort(r[np.isfinite(r[:, 1]), 1]), h0.deaths[i], rtol=1e-5, atol=1e-6)
               for r, i in zip(ref, sample))
    t = time.perf_counter()
    h1_point_cloud_batch(clouds[sample[:200]])
    t_h1 = (time.perf_counter() - t) / 200
    pers = [
        {"method": f"batched H0 (h0_point_cloud), all {len(z)}", "seconds": t_batched, "ratio": 1.0},
        {"method": f"ripser(maxdim=0) loop, {len(sample)} timed, extrapolated to {len(z)}",
         "seconds": t_loop, "ratio": t_loop / t_batched},
        {"method": "H1 via ripser per neighbourhood, extrapolated (not in default)",
         "seconds": t_h1 * len(z), "ratio": t_h1 * len(z) / t_batched},
    ]
    print_table(pers, f"local persistence on {neigh.shape[0]} neighbourhoods of {neigh.shape[1]} points "
                 f"in {z.shape[1]}-d (target ratio >= 20); same diagrams on the sample: {same}")

    # 3. linear probe: kept 10% vs random 10%; also TopoPrune without its label-consistency term
    rows = []
    variants = {"topoprune": ("topoprune", None), "topoprune, label_weight=0": ("topoprune", {"label_weight": 0}),
                "random": ("random", None)}
    for name, (method, params) in variants.items() if h["probe"] else ():
        accs = []
        for seed in range(h["seeds"]):
            r = res if (name == "topoprune" and seed == 0) else topodata.select(
                x, y, rate=h["rate"], method=method, random_state=seed, method_params=params)
            accs.append(_probe(x[r.indices], y[r.indices], emb.features_test, emb.labels_test, h["probe_c"]))
        rows.append({"subset": f"{name} {1 - h['rate']:.0%}", "test acc mean": float(np.mean(accs)),
                     "std": float(np.std(accs)), "per seed": " ".join(f"{a:.4f}" for a in accs)})
    if h["probe"]:
        full = _probe(x, y, emb.features_test, emb.labels_test, h["probe_c"])
        rows.append({"subset": "all 100%", "test acc mean": full, "std": 0.0, "per seed": "-"})
    print_table(rows, f"logistic probe on {h['dataset']} features, test accuracy ({h['seeds']} seeds)")

    if out is not None:
        _plot_stages(stages[:-1], out / "stages.png")
    return {"stages": stages, "persistence": pers, "same_diagrams": bool(same), "probe": rows,
            "n": int(len(z)), "feature_dim": int(x.shape[1])}


def _plot_stages(stages: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keep = [s for s in stages if s["stage"].startswith("topoprune.") or s["stage"] == "select"]
    fig = Figure(figsize=(6, 3))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.barh([s["stage"] for s in keep], [s["seconds"] for s in keep])
    ax.set_xlabel("seconds")
    ax.set_title("TopoPrune stages, select(rate=0.9)")
    fig.savefig(path, bbox_inches="tight")


def main(argv: list[str] | None = None) -> int:
    parser = hyp_parser(hyp, __doc__)
    for section in ("density", "choices", "main"):
        parser.add_argument(f"--{section}", action="store_true", help=f"run the {section} section")
    parser.add_argument("--only", default="", help="comma-separated substrings: run only matching options")
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json, stages.png")
    args = parser.parse_args(argv)
    h = {k: getattr(args, k) for k in hyp}
    if args.only:
        keep = [w.strip() for w in args.only.split(",")]
        for table in (DENSITY_OPTIONS, CHOICES):
            for name in [n for n in table if not any(w in n for w in keep)]:
                del table[name]
    run_all = not (args.density or args.choices or args.main)

    import torch

    torch.set_num_threads(h["threads"])
    warnings.filterwarnings("ignore", category=UserWarning, module="umap")
    print(f"# bench_topoprune  {platform.node()}  python {platform.python_version()}  "
          f"torch {torch.__version__}  threads {h['threads']}")
    results: dict = {"hyp": h}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    if run_all or args.density:
        results["density"] = density_section(h)
    if run_all or args.choices:
        results["choices"] = choices_section(h)
    if run_all or args.main:
        results["main"] = main_section(h, args.out)
    if args.out is not None:
        save_results(args.out, results, __file__)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
