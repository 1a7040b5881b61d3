"""Benchmark of TopoPrune's density handling over a grid of density fixtures, before vs after.

The property checked: with the default settings, the mean score of the sparse circle samples is
at least ``min_ratio`` times the mean score of the dense blob samples, on every fixture of a grid of
:func:`topodata.manifold.density_fixture` (2 classes; blob/circle sizes, circle radius, noise σ and
dimension varied). "before" is the previous radius of ``density='radius'`` (mean distance to all
k = 15 feature-graph neighbours), "after" the current one (the nearer half, 7 neighbours).

Also, on scikit-learn digits (train split of 1,257, ``noise`` of the labels flipped, 3 seeds, the
protocol of ``scripts/bench_topoprune.py --choices``): the ROC AUC of the TopoPrune score for the
flipped samples, of the topological term alone (``label_weight=0``), and the Spearman correlation
between the before and after scores on clean and on noisy labels (how much the ranking moved where
there is no planted density contrast).

Usage::

    python scripts/bench_density_grid.py               # the grid of tests/test_topoprune.py
    python scripts/bench_density_grid.py --grid wide   # 81 fixtures, incl. low-contrast ones
    python scripts/bench_density_grid.py --sections digits

``contrast`` is the circle's mean 15-NN distance over the blob's (L2-normalised features): how much
sparser the circle is. Writes ``results.json`` and a copy of this script to ``--out``.
"""

from __future__ import annotations

import itertools
import sys
import time
import warnings

import numpy as np
from _bench import parse_hyp, print_table, save_results

hyp = {
    "grid": "test",  # test: the 24 fixtures of tests/test_topoprune.py; wide: 81 fixtures
    "min_ratio": 1.5,  # the property: circle mean score >= min_ratio x blob mean score
    "noise": 0.1,  # digits: fraction of labels flipped
    "seeds": 3,  # digits: selection seeds
    "threads": 1,  # torch intra-op threads
    "sections": "grid,digits",  # comma-separated: which sections to run
}

# (n_features, (n_blob, n_circle), radius, noise): the grid of tests/test_topoprune.py
GRIDS = {
    "test": list(itertools.product([8, 16, 32], [(100, 25), (200, 40)], [1.5, 3.0], [0.03, 0.08])),
    "wide": list(itertools.product([8, 16, 64], [(100, 25), (400, 40), (300, 150)], [1.0, 2.0, 4.0],
                                   [0.02, 0.05, 0.1])),
}


def _all_neighbour_weights(feature_dists, manifold_dists, power):
    """The previous ``_stretch_weights``: radii as the mean distance to all k neighbours."""
    r_f = feature_dists[:, 1:].mean(axis=1, dtype=np.float64)
    r_z = manifold_dists[:, 1:].mean(axis=1, dtype=np.float64)
    rho = np.where(r_z > 0, r_f / np.where(r_z > 0, r_z, 1.0), 1.0)
    med = np.median(rho)
    return (rho / med if med > 0 else np.ones_like(rho)) ** power


class _Before:
    """Context manager: TopoPrune with the previous radius (module attribute swapped, restored)."""

    def __enter__(self):
        import topodata.scores.topoprune as tp

        self.tp, self.saved = tp, tp._stretch_weights
        tp._stretch_weights = _all_neighbour_weights

    def __exit__(self, *exc):
        self.tp._stretch_weights = self.saved


def grid_section(h: dict) -> list[dict]:
    from topodata.manifold import density_fixture, l2_normalize
    from topodata.neighbors import knn
    from topodata.scores.topoprune import topoprune

    rows = []
    for i, (d, (nb, nc), r, s) in enumerate(GRIDS[h["grid"]]):
        x, y, on = density_fixture(n_classes=2, n_blob=nb, n_circle=nc, n_features=d, radius=r,
                                   noise=s, random_state=i)
        dist = knn(l2_normalize(x), 16, method="exact", device="cpu")[1][:, 1:].mean(axis=1)
        ratios = []
        for before in (True, False):
            if before:
                with _Before():
                    sc = topoprune(x, y, budgets={}, rng=np.random.default_rng(i)).scores
            else:
                sc = topoprune(x, y, budgets={}, rng=np.random.default_rng(i)).scores
            ratios.append(float(sc[on].mean() / sc[~on].mean()))
        rows.append({"dim": d, "blob": nb, "circle": nc, "radius": r, "noise": s,
                     "contrast": float(dist[on].mean() / dist[~on].mean()),
                     "ratio before": ratios[0], "ratio after": ratios[1]})
    print_table(rows, f"circle/blob mean score, default settings ({len(rows)} fixtures, 2 classes)")
    for key in ("ratio before", "ratio after"):
        v = np.array([r[key] for r in rows])
        print(f"{key}: min {v.min():.3g}, median {np.median(v):.3g}, "
              f"below {h['min_ratio']}: {int((v < h['min_ratio']).sum())} of {v.size}")
    return rows


def digits_section(h: dict) -> list[dict]:
    from _bench import noisy_digits
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    import topodata

    x_tr, _, y_tr, _, y_noisy, flip = noisy_digits(h["noise"])

    def scores(labels, seed, before, **params):
        def run():
            return topodata.select(x_tr, labels, rate=0.9, method="topoprune", random_state=seed,
                                   method_params=params).scores
        if before:
            with _Before():
                return run()
        return run()

    rows = []
    for seed in range(h["seeds"]):
        old, new = scores(y_noisy, seed, True), scores(y_noisy, seed, False)
        old_t = scores(y_noisy, seed, True, label_weight=0.0)
        new_t = scores(y_noisy, seed, False, label_weight=0.0)
        old_c, new_c = scores(y_tr, seed, True), scores(y_tr, seed, False)
        rows.append({
            "seed": seed,
            "AUC before": float(roc_auc_score(flip, old)),
            "AUC after": float(roc_auc_score(flip, new)),
            "AUC topo-only before": float(roc_auc_score(flip, old_t)),
            "AUC topo-only after": float(roc_auc_score(flip, new_t)),
            "spearman noisy": float(spearmanr(old, new)[0]),
            "spearman clean": float(spearmanr(old_c, new_c)[0]),
            "spearman topo-only": float(spearmanr(old_t, new_t)[0]),
        })
    mean = {k: (float(np.mean([r[k] for r in rows])) if k != "seed" else "mean") for k in rows[0]}
    print_table(rows + [mean], f"digits (train 1,257, {h['noise']:.0%} labels flipped, {flip.sum()} flipped): "
                          "flipped-label ROC AUC and before/after score correlation")
    return rows


def main(argv: list[str] | None = None) -> int:
    h, args = parse_hyp(hyp, __doc__, argv)
    if h["grid"] not in GRIDS:
        print(f"error: --grid must be one of {sorted(GRIDS)}; got {h['grid']!r}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(h["threads"])
    warnings.filterwarnings("ignore", category=UserWarning, module="umap")
    t = time.perf_counter()
    results: dict = {"hyp": h}
    sections = {"grid": grid_section, "digits": digits_section}
    for name in h["sections"].split(","):
        if name.strip() not in sections:
            print(f"error: unknown section {name!r}; choose from {sorted(sections)}", file=sys.stderr)
            return 2
    for name in h["sections"].split(","):
        results[name.strip()] = sections[name.strip()](h)
    print(f"\ntotal {time.perf_counter() - t:.0f} s")
    if args.out is not None:
        save_results(args.out, results, __file__)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
