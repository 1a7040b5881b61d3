"""The selection framework: budgets, strategies, the public select() and atomic export."""

from __future__ import annotations

import json

import numpy as np
import pytest

import topodata
from topodata._validation import TopodataInputError
from topodata.select import (
    auto_beta,
    _class_boundary,
    class_boundary,
    class_budgets,
    n_kept,
    save_selection,
    select,
    select_from_scores,
    to_subset,
)


@pytest.mark.parametrize("n", [1, 7, 10, 99, 1797, 60000])
@pytest.mark.parametrize("rate", [0.01, 0.1, 0.5, 0.7, 0.9, 0.95, 0.99])
def test_n_kept_is_n_minus_floor(n, rate):
    import math

    assert n_kept(n, rate) == n - math.floor(rate * n + 1e-9)
    assert n_kept(10, 0.9) == 1  # 0.9 * 10 is 8.999… in floating point; still floor 9


@pytest.mark.parametrize("rate", [0.5, 0.9, 0.95])
def test_proportional_budgets_sum_and_within_one(blobs, rate):
    _, y = blobs
    keep = n_kept(len(y), rate)
    b = class_budgets(y, keep)
    assert sum(b.values()) == keep
    counts = np.bincount(y)
    for c, k in b.items():
        assert abs(k - keep * counts[c] / len(y)) < 1


def test_balanced_budgets_cap_and_redistribute():
    y = np.repeat([0, 1, 2], [50, 5, 50])
    b = class_budgets(y, 60, balance="balanced")
    assert b == {0: 28, 1: 5, 2: 27} or b == {0: 27, 1: 5, 2: 28}
    assert sum(b.values()) == 60


@pytest.mark.parametrize("keep", [0, 1, 17, 60, 150, 240, 299, 300])
def test_boundary_budgets_sum_exactly_and_respect_class_sizes(keep):
    y = np.repeat([0, 1, 2, 3], [100, 100, 60, 40])
    b = class_budgets(y, keep, balance="boundary", boundary=[0.0, 0.05, 0.3, 0.6])
    assert sum(b.values()) == keep
    assert all(0 <= b[c] <= n for c, n in zip(range(4), [100, 100, 60, 40]))


def test_boundary_budgets_follow_the_boundary_mass():
    y = np.repeat([0, 1, 2], 100)
    b = class_budgets(y, 60, balance="boundary", boundary=[0.0, 0.1, 0.3])
    # half by size (10 each), half by mass 0 : 10 : 30 (0, 7.5, 22.5)
    assert b == {0: 10, 1: 17, 2: 33}
    # no boundary anywhere: proportional; the same boundary everywhere: proportional too
    assert class_budgets(y, 60, balance="boundary", boundary=[0, 0, 0]) == class_budgets(y, 60)
    assert class_budgets(y, 60, balance="boundary", boundary=[0.2] * 3) == class_budgets(y, 60)


def test_boundary_budgets_cap_a_class_and_hand_on_the_rest():
    y = np.repeat([0, 1, 2], [500, 500, 50])
    b = class_budgets(y, 600, balance="boundary", boundary=[0.01, 0.01, 0.9])
    assert b[2] == 50 and sum(b.values()) == 600 and abs(b[0] - b[1]) <= 1


@pytest.mark.parametrize("balance", ["proportional", "balanced", "boundary"])
@pytest.mark.parametrize("keep", [30, 90, 120, 150, 260])
def test_budgets_cover_distinct_items_before_copies(balance, keep):
    y = np.repeat([0, 1, 2], [100, 100, 100])
    distinct = np.array([60, 60, 10])  # class 2: ten items, each ten times
    b = class_budgets(y, keep, balance=balance, boundary=[0.05, 0.05, 0.6], distinct=distinct)
    got = np.array([b[c] for c in range(3)])
    assert got.sum() == keep and (got <= 100).all()
    # no class goes past its distinct items while another still has some left, whatever the weights ask
    if keep <= distinct.sum():
        assert (got <= distinct).all()
    else:
        assert (got >= distinct).all()
    # caps that do not bind change nothing
    assert class_budgets(y, 30, balance=balance, boundary=[0.05, 0.05, 0.6], distinct=[100, 100, 100]) == \
        class_budgets(y, 30, balance=balance, boundary=[0.05, 0.05, 0.6])


def test_budgets_bad_distinct_counts():
    with pytest.raises(TopodataInputError, match="distinct must be"):
        class_budgets(np.repeat([0, 1], 10), 6, distinct=[11, 5])
    with pytest.raises(TopodataInputError, match="distinct must be"):
        class_budgets(np.repeat([0, 1], 10), 6, distinct=[5])


@pytest.mark.parametrize("boundary, match", [(None, "needs the classes' boundary"), ([0.1, 0.2], "one per class"),
                                             ([0.1, -1, 0.2], "non-negative"), ([0.1, np.nan, 0], "finite")])
def test_boundary_budgets_bad_shares(boundary, match):
    with pytest.raises(TopodataInputError, match=match):
        class_budgets(np.repeat([0, 1, 2], 10), 6, balance="boundary", boundary=boundary)


def test_class_boundary_is_the_mean_share_of_foreign_neighbours(blobs, monkeypatch, built_indices):
    from sklearn.neighbors import NearestNeighbors

    x, y = blobs
    y = y.copy()
    y[::7] = (y[::7] + 1) % 3  # some foreign labels, so the shares are not all 0
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    nb = NearestNeighbors(n_neighbors=15).fit(xn).kneighbors(xn, return_distance=False)
    foreign = (y[nb[:, 1:]] != y[:, None]).mean(1)
    want = [foreign[y == c].mean() for c in range(3)]
    got = class_boundary(x, y, rng=np.random.default_rng(0))
    np.testing.assert_allclose(got, want, atol=1e-12)
    # above the exact-search size the graph is IVF (seeded): close, and reproducible
    import topodata.neighbors as N

    monkeypatch.setattr(N, "EXACT_MAX_SAMPLES", 100)
    monkeypatch.setattr(N, "EXACT_MAX_SAMPLES_LOW_DIM", 100)
    built_indices.clear()  # count this call's indices only
    a, (_, idx, _) = _class_boundary(x, y, np.random.default_rng(1))
    assert built_indices == ["ivf"] and idx.shape == nb.shape
    assert np.array_equal(a, class_boundary(x, y, rng=np.random.default_rng(1)))
    np.testing.assert_allclose(a, want, atol=0.05)


def test_topoprune_budgets_follow_the_boundary_by_default():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(6 * np.eye(5)[c], 1, size=(100, 5)) for c in range(3)])
    y = np.repeat(np.arange(3), 100)
    y[100:200:4] = 2  # classes 1 and 2 now share a region: class 0 has no foreign neighbours
    res = select(x, y, rate=0.8, method="topoprune", random_state=0, method_params={"manifold": "none", "k_local": 8})
    p = res.manifest["params"]
    assert p["class_balance"] == "boundary" and p["class_boundary"]["0"] == 0.0
    kept = np.bincount(y[res.indices], minlength=3)
    bnd = np.array([p["class_boundary"][str(c)] for c in range(3)])
    assert kept.tolist() == list(class_budgets(y, n_kept(len(y), 0.8), balance="boundary", boundary=bnd).values())
    assert kept[0] < n_kept(len(y), 0.8) * np.mean(y == 0) - 1  # the separated class gives budget away
    # another class_balance is honoured, and random keeps its proportional default
    prop = select(x, y, rate=0.8, method="topoprune", random_state=0, class_balance="proportional",
                  method_params={"manifold": "none", "k_local": 8})
    assert np.bincount(y[prop.indices]).tolist() == list(class_budgets(y, n_kept(len(y), 0.8)).values())
    assert select(x, y, rate=0.8, method="random").manifest["params"]["class_balance"] == "proportional"
    with pytest.raises(TopodataInputError, match="reads the features"):
        select(None, y, rate=0.8, method="random", class_balance="boundary")


@pytest.mark.parametrize("n,rate", [(10, 0.9), (101, 0.5), (300, 0.9), (300, 0.95), (1000, 0.7)])
def test_random_select_exact_sorted_unique(n, rate):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, n)
    y[:4] = np.arange(4)
    res = select(np.zeros((n, 2)), y, rate=rate, method="random", random_state=3)
    assert res.indices.dtype == np.int64
    assert res.indices.size == n_kept(n, rate)
    assert np.all(np.diff(res.indices) > 0)
    assert res.indices.min() >= 0 and res.indices.max() < n
    assert np.isnan(res.scores).all() and res.scores.dtype == np.float64
    assert res.mask.sum() == res.indices.size


def test_select_seeds(blobs):
    x, y = blobs
    a = select(x, y, rate=0.9, method="random", random_state=0).indices
    b = select(x, y, rate=0.9, method="random", random_state=0).indices
    c = select(x, y, rate=0.9, method="random", random_state=1).indices
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_manifest_contract(blobs):
    x, y = blobs
    m = select(x, y, rate=0.9, method="random", random_state=5, dataset="blobs").manifest
    for key in ("dataset", "n_total", "n_kept", "rate", "method", "seed", "params", "versions",
                "timings_s", "class_counts_kept"):
        assert key in m
    assert m["n_total"] == 300 and m["n_kept"] == 30 and m["seed"] == 5
    assert sum(m["class_counts_kept"].values()) == 30
    assert {"topodata", "torch", "umap-learn", "faiss-cpu", "ripser"} <= set(m["versions"])
    json.dumps(m)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rate=0.0), "strictly between 0 and 1"),
        (dict(rate=1.0), "strictly between 0 and 1"),
        (dict(rate=-0.2), "strictly between 0 and 1"),
        (dict(rate=0.5, method="nope"), "method must be one of"),
        (dict(rate=0.5, strategy="nope"), "strategy must be one of"),
        (dict(rate=0.5, class_balance="nope"), "class_balance must be one of"),
        (dict(rate=0.5, beta=1.5), "beta must be"),
    ],
)
def test_select_bad_arguments(blobs, kwargs, match):
    x, y = blobs
    kwargs.setdefault("method", "random")
    with pytest.raises(ValueError, match=match):
        select(x, y, **kwargs)


def test_select_bad_features_and_labels(blobs):
    x, y = blobs
    x_nan = x.copy()
    x_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf in 1 sample"):
        select(x_nan, y, rate=0.5, method="kcenter")
    with pytest.raises(ValueError, match="labels has length 299 but features have 300"):
        select(x, y[:-1], rate=0.5, method="kcenter")
    with pytest.raises(ValueError, match="must be 2-D"):
        select(x[:, 0], y, rate=0.5, method="kcenter")
    with pytest.raises(ValueError, match="integer class ids"):
        select(x, y + 0.5, rate=0.5, method="random")


def test_class_names_are_numbered_in_sorted_order(blobs):
    x, y = blobs
    names = np.array(["zebra", "ant", "mole"])  # sorted: ant=0, mole=1, zebra=2
    ids = np.array([2, 0, 1])[y]
    ref = select(x, ids, rate=0.9, random_state=0, method_params={"manifold": "none"})
    for given in (names[y], names[y].astype(object), list(names[y])):
        res = select(x, given, rate=0.9, random_state=0, method_params={"manifold": "none"})
        np.testing.assert_array_equal(res.indices, ref.indices)
        np.testing.assert_array_equal(res.scores, ref.scores)
        assert res.manifest["classes"] == ["ant", "mole", "zebra"]
        assert res.manifest["class_counts_kept"] == ref.manifest["class_counts_kept"]
    assert "classes" not in ref.manifest  # class ids pass through unnumbered
    neg = select(x, y - 1, rate=0.9, method="random", random_state=0)
    np.testing.assert_array_equal(neg.indices, select(x, y, rate=0.9, method="random", random_state=0).indices)
    assert neg.manifest["classes"] == [-1, 0, 1]


def test_class_names_in_errors_and_warnings(blobs):
    x, y = blobs
    names = np.array(["a", "b", "rare"])[np.minimum(y, 1)]
    names[:1] = "rare"
    with pytest.raises(ValueError, match="class 'rare' has 1 samples but the method needs at least 2"):
        select(x, names, rate=0.9, method="d2", random_state=0)
    with pytest.warns(UserWarning, match=r"keeps no sample of class\(es\) \['rare'\]"):
        select(x, names, rate=0.95, method="random", random_state=0)
    with pytest.raises(TypeError, match="one type; got mixed objects"):
        select(x, np.array([1, "a"] * 150, dtype=object), rate=0.9, method="random")


def test_strategies_hard_easy_coverage():
    y = np.repeat([0, 1], 100)
    s = np.concatenate([np.arange(100.0), np.arange(100.0)[::-1]])
    budgets = {0: 10, 1: 10}
    rng = np.random.default_rng(0)
    hard = select_from_scores(s, y, budgets, strategy="hard", rng=rng)  # distinct scores: no ties
    assert set(hard) == set(range(90, 100)) | set(range(100, 110))
    easy = select_from_scores(s, y, budgets, strategy="easy", rng=rng)
    assert set(easy) == set(range(0, 10)) | set(range(190, 200))
    cov = select_from_scores(s, y, budgets, strategy="coverage", beta=0.1, n_strata=10, rng=rng)
    assert cov.size == 20
    # the top 10% (scores 90..99) are dropped; one pick per stratum spans the remaining range
    assert s[cov[cov < 100]].max() < 90
    assert len(np.unique(np.floor(s[cov[cov < 100]] / 9))) == 10


def test_auto_beta_grows_with_rate():
    assert auto_beta(0.3) == 0.0
    assert auto_beta(0.9) == pytest.approx(0.1)
    assert auto_beta(0.95) > auto_beta(0.9) > auto_beta(0.7)
    from topodata.scores import METHODS

    topo = METHODS["topoprune"].auto_beta  # its own schedule, chosen on a validation split
    assert auto_beta(0.5, *topo) == 0.0 and auto_beta(0.7, *topo) == pytest.approx(0.05)
    assert auto_beta(0.9, *topo) == pytest.approx(0.075) == auto_beta(0.95, *topo)
    ccs = METHODS["ccs"].auto_beta  # the authors' cut-offs: 0.2 at 80% pruned, 0.3 at 90%
    assert auto_beta(0.6, *ccs) == 0.0
    assert auto_beta(0.8, *ccs) == pytest.approx(0.2) and auto_beta(0.9, *ccs) == pytest.approx(0.3)


def test_save_selection_atomic_files(tmp_path, blobs):
    x, y = blobs
    res = select(x, y, rate=0.9, method="random", random_state=0)
    out = tmp_path / "run"
    save_selection(res, out)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["indices.npy", "indices.txt", "manifest.json", "scores.npy"]
    idx = np.load(out / "indices.npy")
    assert idx.dtype == np.int64 and np.array_equal(idx, res.indices)
    assert np.loadtxt(out / "indices.txt", dtype=np.int64).tolist() == res.indices.tolist()
    assert np.load(out / "scores.npy").shape == (300,)


def test_save_selection_failure_leaves_nothing(tmp_path, blobs):
    x, y = blobs
    res = select(x, y, rate=0.9, method="random", random_state=0)
    out = tmp_path / "run"
    res.manifest["bad"] = object()  # not JSON serialisable: fails before any rename
    with pytest.raises(TypeError):
        save_selection(res, out)
    assert not out.exists()


def test_to_subset(tmp_path, blobs):
    import torch

    x, y = blobs
    res = select(x, y, rate=0.9, method="random", random_state=0)
    ds = torch.utils.data.TensorDataset(torch.as_tensor(x), torch.as_tensor(y))
    sub = to_subset(ds, res.indices)
    assert len(sub) == 30
    save_selection(res, tmp_path / "r")
    assert len(topodata.to_subset(ds, tmp_path / "r")) == 30
    with pytest.raises(ValueError, match="does not fit a dataset of length 10"):
        to_subset(torch.utils.data.TensorDataset(torch.zeros(10)), res.indices)


def test_topodata_select_stays_a_function_after_module_import(blobs):
    import importlib

    importlib.import_module("topodata.select")
    x, y = blobs
    first = topodata.select(x, y, rate=0.9, method="random", random_state=0)
    second = topodata.select(x, y, rate=0.9, method="random", random_state=0)
    assert np.array_equal(first.indices, second.indices)


def test_key_sampler_is_stable_when_scores_shift():
    """Small score noise moves few samples across strata; the key sampler keeps the rest selected."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 1000)
    s = rng.random(2000)
    s_noisy = s + rng.normal(scale=0.005, size=2000)
    budgets = {0: 100, 1: 100}

    def jaccard(a, b):
        return len(np.intersect1d(a, b)) / len(np.union1d(a, b))

    overlap = {}
    for sampler in ("draw", "key"):
        kw = dict(strategy="coverage", beta=0.1, n_strata=10, sampler=sampler)
        clean = select_from_scores(s, y, budgets, rng=np.random.default_rng(3), **kw)
        again = select_from_scores(s, y, budgets, rng=np.random.default_rng(3), **kw)
        noisy = select_from_scores(s_noisy, y, budgets, rng=np.random.default_rng(3), **kw)
        assert np.array_equal(clean, again) and clean.size == 200
        overlap[sampler] = jaccard(clean, noisy)
    assert overlap["key"] > 0.8
    assert overlap["draw"] < 0.3


def test_unknown_sampler(blobs):
    x, y = blobs
    with pytest.raises(ValueError, match="sampler must be one of"):
        select_from_scores(np.zeros(300), y, {0: 1, 1: 1, 2: 1}, sampler="x", rng=np.random.default_rng(0))


def test_precomputed_scores_follow_the_same_selection(blobs):
    """select(scores=) applies budgets, auto beta and coverage as for a method's scores, seed for seed."""
    x, y = blobs
    s = np.random.default_rng(1).random(300)
    res = select(x, y, rate=0.8, scores=s, random_state=5)
    budgets = class_budgets(y, n_kept(300, 0.8))
    expected = select_from_scores(s, y, budgets, strategy="coverage", beta=auto_beta(0.8),
                                  rng=np.random.default_rng(5))
    assert np.array_equal(res.indices, expected) and res.indices.size == 60
    assert res.manifest["method"] == "precomputed" and res.manifest["params"]["beta"] == auto_beta(0.8)
    assert np.array_equal(res.scores, s)
    # the features are optional: only the labels decide the budgets
    assert np.array_equal(select(None, y, rate=0.8, scores=s, random_state=5).indices, expected)
    # the most-scored beta fraction of each class is never kept
    for c in range(3):
        members = np.flatnonzero(y == c)
        dropped = members[np.argsort(-s[members])[: int(auto_beta(0.8) * members.size)]]
        assert not np.isin(dropped, res.indices).any()


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "random"}, "either scores= or a method"),
    ({"method_params": {"k": 3}}, "either scores= or a method"),
    ({"scores": np.zeros(299)}, "scores has 299 entries"),
    ({"scores": np.r_[np.nan, np.zeros(299)]}, "NaN or inf"),
    ({"scores": np.zeros((300, 1))}, "must be 1-D"),
])
def test_precomputed_scores_bad_input(blobs, kwargs, match):
    x, y = blobs
    kwargs = {"scores": np.zeros(300), **kwargs}
    with pytest.raises(ValueError, match=match):
        select(x, y, rate=0.5, **kwargs)


# ----------------------------------------------------------------------------- near-duplicates
def _copies(n_images=60, copies=4, dim=16, noise=1e-3, seed=0):
    """``n_images`` random points in 3 classes, each present ``copies`` times with tiny noise."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_images, dim))
    group = np.repeat(np.arange(n_images), copies)
    x = base[group] + noise * rng.normal(size=(group.size, dim))
    y = (np.arange(n_images) % 3)[group]
    perm = rng.permutation(group.size)
    return x[perm], y[perm], group[perm]


def test_near_duplicate_groups_of_known_size():
    from topodata.dedup import near_duplicate_groups

    x, _, group = _copies()
    found, thr = near_duplicate_groups(x)
    assert thr > 0
    # the same partition as the ground truth, whatever the numbering
    pairs = {(int(a), int(b)) for a, b in zip(group, found)}
    assert len(pairs) == 60 and len({a for a, _ in pairs}) == 60 and len({b for _, b in pairs}) == 60
    assert np.bincount(found).tolist() == [4] * 60


def test_near_duplicate_groups_leave_distinct_points_alone():
    from topodata.dedup import near_duplicate_groups

    x = np.random.default_rng(1).normal(size=(300, 8))
    found, _ = near_duplicate_groups(x)
    assert np.unique(found).size == 300


@pytest.mark.parametrize("rate,distinct", [(0.9, 24), (0.8, 48), (0.7, 60)])
def test_dedup_keeps_one_per_group_before_any_second(rate, distinct):
    x, y, group = _copies()
    res = select(x, y, rate=rate, method="moderate", dedup=True, random_state=0)
    kept = group[res.indices]
    assert res.indices.size == n_kept(len(y), rate)
    # every kept row a new image until all 60 are covered
    assert np.unique(kept).size == min(distinct, 60) == min(res.indices.size, 60)
    info = res.manifest["params"]["dedup"]
    assert info["n_groups"] == 60 and info["n_redundant"] == 180 and info["distinct_kept"] == np.unique(kept).size
    without = select(x, y, rate=rate, method="moderate", dedup=False, random_state=0)
    assert np.unique(group[without.indices]).size < np.unique(kept).size


def test_dedup_is_deterministic_and_reaches_every_strategy():
    x, y, group = _copies(seed=3)
    a = select(x, y, rate=0.9, method="random", dedup=True, random_state=5)
    b = select(x, y, rate=0.9, method="random", dedup=True, random_state=5)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert np.unique(group[a.indices]).size == a.indices.size


def test_dedup_caps_boundary_budgets_at_the_groups():
    # class 2 touches class 1 (boundary budgets favour it) but holds only 15 distinct images, 6 copies each:
    # the surplus its boundary asks for goes to the other classes' uncovered images, not to copies
    rng = np.random.default_rng(0)
    base = np.concatenate([rng.normal(6 * np.eye(6)[0], 1, (90, 6)), rng.normal(6 * np.eye(6)[1], 1, (90, 6)),
                           rng.normal(6 * np.eye(6)[1] + 1.5, 1, (15, 6))])
    label = np.repeat([0, 1, 2], [90, 90, 15])
    reps = np.repeat([1, 1, 6], [90, 90, 15])
    src = np.repeat(np.arange(base.shape[0]), reps)
    x, y = base[src] + rng.normal(0, 1e-3, (src.size, 6)), label[src]
    res = select(x, y, rate=0.6, method="topoprune", random_state=0, dedup=src,
                 method_params={"manifold": "none", "k_local": 8})
    assert res.manifest["params"]["class_balance"] == "boundary"
    assert np.unique(src[res.indices]).size == res.indices.size == n_kept(len(y), 0.6)
    assert np.bincount(y[res.indices], minlength=3)[2] == 15


def test_boundary_graph_serves_the_feature_dedup(monkeypatch):
    # TopoPrune's boundary budgets build the exact feature kNN graph once; the feature-space dedup reuses it
    import topodata.neighbors as nb

    x, y, group = _copies()
    calls = []
    real = nb.knn
    monkeypatch.setattr(nb, "knn", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    res = select(x, y, rate=0.5, method="topoprune", random_state=0, method_params={"manifold": "none"})
    info = res.manifest["params"]["dedup"]
    assert info["n_groups"] == 60 and info["distinct_kept"] == 60 == np.unique(group[res.indices]).size
    assert calls.count(11) == 0 and calls.count(15) == 1  # no separate 10-neighbour graph for the groups


def test_dedup_needs_features():
    y = np.repeat([0, 1], 20)
    with pytest.raises(TopodataInputError, match="dedup needs features"):
        select(None, y, rate=0.5, method="random", dedup=True)
    with pytest.raises(TopodataInputError, match="dedup must be"):
        select(np.zeros((40, 2)), y, rate=0.5, method="random", dedup="sometimes")


# ----------------------------------------------------------------------------- the noise cut
def test_flagged_samples_are_cut_first_and_size_the_cut():
    y = np.repeat([0, 1], 50)
    s = np.linspace(0, 1, 100)
    flagged = np.zeros(100, dtype=bool)
    flagged[[3, 10, 20, 60, 61, 62, 63, 64, 65, 66, 67]] = True  # low scores: only the flag finds them
    # class 0: cut floor(0.06 * 50) = 3 = its flagged; class 1: cut 7 of its 8 flagged
    kept = select_from_scores(s, y, {0: 47, 1: 43}, beta={0: 0.06, 1: 0.14}, suspects=flagged,
                              rng=np.random.default_rng(0))
    expected = np.setdiff1d(np.arange(100), [3, 10, 20, 60, 61, 62, 63, 64, 65, 66, 67])
    # the highest-scored flagged sample of class 1 (67) is cut first; the unflagged top (99) stays
    assert 99 in kept and 67 not in kept
    assert np.setdiff1d(kept, expected).tolist() == [60]  # class 1's lowest flagged is the 8th: kept


def test_auto_cut_follows_the_flagged_share():
    from topodata.select import _noise_cut

    y = np.repeat([0, 1], 10)
    flagged = np.zeros(20, dtype=bool)
    flagged[:4] = True
    assert _noise_cut(y, 0.075, flagged) == {0: 0.4, 1: 0.075}
    assert _noise_cut(y, 0.075, None) == {0: 0.075, 1: 0.075}


def test_coverage_leftovers_are_not_tilted_towards_high_scores():
    # 7 strata of 10 members each: the budget 17 leaves 3 strata with one more; over seeds those
    # must land on low- and high-score strata alike (a stable tie-break gave them to the top ones)
    s = np.repeat(np.arange(7, dtype=float), 10)
    y = np.zeros(70, dtype=np.int64)
    tops = []
    for seed in range(40):
        kept = select_from_scores(s, y, {0: 17}, n_strata=7, sampler="key", rng=np.random.default_rng(seed))
        tops.append(np.mean(s[kept]))
    assert abs(np.mean(tops) - 3.0) < 0.15


def test_options_a_method_ignores_are_named_in_a_warning(blobs):
    x, y = blobs
    with pytest.warns(UserWarning, match=r"beta, sampler ignored: method 'kcenter' selects by itself"):
        select(x, y, rate=0.8, method="kcenter", beta=0.1, sampler="draw")
    with pytest.warns(UserWarning, match=r"n_strata ignored: strategy 'hard' has no strata"):
        select(x, y, rate=0.8, method="el2n", strategy="hard", n_strata=5)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        select(x, y, rate=0.8, method="kcenter")  # defaults: no warning


def test_near_duplicate_threshold_is_a_plain_distance():
    from topodata.dedup import FEATURE_FACTOR, near_duplicate_groups
    from topodata.neighbors import knn

    # rows 0 and 1 lie 0.02 apart on the unit circle (the threshold is on normalised rows)
    a = 0.02
    x = np.array([[1.0, 0.0], [np.cos(a), np.sin(a)], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    d01 = float(np.linalg.norm(x[0] - x[1]))
    assert near_duplicate_groups(x, threshold=d01 * 1.01, k=2)[0].tolist() == [0, 0, 1, 2, 3]
    assert near_duplicate_groups(x, threshold=d01 * 0.99, k=2)[0].tolist() == [0, 1, 2, 3, 4]
    # 'auto' is FEATURE_FACTOR x the median distance to the k-th neighbour, from the graph given or built
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 6))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    idx, d = knn(z, 11, method="exact")
    _, thr = near_duplicate_groups(z, k=10)
    assert thr == pytest.approx(FEATURE_FACTOR * np.median(d[:, 10].astype(np.float64)), rel=1e-6)
    assert near_duplicate_groups(z, k=10, knn_graph=(idx, d))[1] == pytest.approx(thr, rel=1e-6)
