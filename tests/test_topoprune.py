"""TopoPrune: scores, determinism, the density check, the gradient path, selection and plots."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import topodata
from topodata._validation import TopodataInputError
from topodata.manifold import density_fixture
from topodata.scores.topoprune import (
    CONFIG,
    TopoPruneConfig,
    label_disagreement,
    local_neighbourhoods,
    _stretch_weights,
    topological_displacement,
    topoprune,
)
from topodata.select import class_budgets, n_kept
from topodata.topology import diagram_summaries, h0_point_cloud, h0_total_persistence

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    """The first 600 of scikit-learn's 8×8 digits (pixels as features, 10 classes, ~60 each)."""
    x, y = load_digits(return_X_y=True)
    return x[:600], y[:600]


def _run(x, y, seed=0, **params):
    return topoprune(x, y, budgets={}, rng=np.random.default_rng(seed), **params)


@pytest.fixture(scope="module")
def density_run():
    """Density fixture (:func:`topodata.manifold.density_fixture`): 2 classes, each a Gaussian blob
    of 150 points (σ = 0.05) and a circle of 50 points (radius 3, noise σ = 0.05) around a centre of
    norm 10, in 16-d, seed 0; TopoPrune with its defaults (UMAP to 8-d, density='radius')."""
    x, y, on_circle = density_fixture(n_classes=2, n_blob=150, n_circle=50, random_state=0)
    return _run(x, y), on_circle


def test_circle_scores_above_blob(density_run):
    out, on_circle = density_run
    assert out.scores[on_circle].mean() > 1.5 * out.scores[~on_circle].mean()


# The density grid: n_features × (n_blob, n_circle) per class × circle radius × noise σ (blob and
# circle), 2 classes, fixture seed = row; the circle's mean 15-NN distance is 2.1-29x the blob's.
DENSITY_GRID = list(itertools.product([8, 16, 32], [(100, 25), (200, 40)], [1.5, 3.0], [0.03, 0.08]))


@pytest.mark.parametrize("seed, n_features, sizes, radius, noise",
                         [(i, *row) for i, row in enumerate(DENSITY_GRID)])
def test_circle_scores_above_blob_over_the_grid(seed, n_features, sizes, radius, noise):
    """With the default settings a sparse circle outscores the dense blob by >= 1.5x on every
    fixture of the grid, not only on the one above (scripts/bench_density_grid.py prints the table)."""
    n_blob, n_circle = sizes
    x, y, on_circle = density_fixture(n_classes=2, n_blob=n_blob, n_circle=n_circle,
                                      n_features=n_features, radius=radius, noise=noise,
                                      random_state=seed)
    scores = _run(x, y, seed=seed).scores
    assert scores[on_circle].mean() > 1.5 * scores[~on_circle].mean()


def test_stretch_weights_read_the_nearer_half_of_the_neighbours():
    """Radii from the nearer half of the k neighbours: the far ones (columns 8-14 of a 15-column
    graph) do not move the weights; ρ is normalised by its median and raised to ``power``."""
    feat = np.zeros((3, 15))
    feat[:, 1:8] = [[1.0], [2.0], [4.0]]
    feat[:, 8:] = [[100.0], [1.0], [7.0]]  # far neighbours: ignored
    manifold = np.ones((3, 15))
    manifold[:, 0] = 0.0
    np.testing.assert_allclose(_stretch_weights(feat, manifold, 2.0), [0.25, 1.0, 4.0])
    manifold[:, 8:] = 50.0
    np.testing.assert_allclose(_stretch_weights(feat, manifold, 1.0), [0.5, 1.0, 2.0])
    # a 3-column graph keeps its single nearest neighbour
    np.testing.assert_allclose(_stretch_weights(feat[:, :3], manifold[:, :3], 1.0), [0.5, 1.0, 2.0])


def test_output_contract(density_run):
    out, _ = density_run
    n = out.scores.shape[0]
    assert out.scores.shape == (n,) and out.scores.dtype == np.float64
    assert np.isfinite(out.scores).all() and (out.scores >= 0).all()
    assert set(out.timings_s) == {"manifold", "knn", "local_topology", "displacement"}
    assert out.extras["manifold"].shape == (n, 8)
    for f in dataclasses.fields(TopoPruneConfig):
        assert out.params[f.name] == f.default
    diagrams = out.extras["neighbourhoods"]
    assert 2 <= len(diagrams) <= 4
    assert all(d["h0"].shape == (16,) and d["h1"].ndim == 2 for d in diagrams)


def test_select_hits_budgets_exactly(digits):
    x, y = digits
    res = topodata.select(x, y, rate=0.9, method="topoprune", random_state=0)
    assert res.indices.size == n_kept(600, 0.9) == 60
    kept = {int(c): int(k) for c, k in zip(*np.unique(y[res.indices], return_counts=True))}
    boundary = [res.manifest["params"]["class_boundary"][str(c)] for c in range(10)]  # the default budgets
    assert kept == class_budgets(y, 60, balance="boundary", boundary=boundary)
    assert res.manifest["params"]["k_local"] == 16
    # TopoPrune's auto schedule (0.075 at rate 0.9), capped at the contested share: samples with
    # more than 7 of their 14 nearest (L2-normalised) feature neighbours in another class
    from sklearn.neighbors import NearestNeighbors

    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    neigh = NearestNeighbors(n_neighbors=14).fit(xn).kneighbors(return_distance=False)
    contested = np.mean((y[neigh] != y[:, None]).sum(axis=1) > 7)
    assert 0 < contested < 0.075
    params = res.manifest["params"]
    assert params["contested_share"] == pytest.approx(contested) and params["beta"] == pytest.approx(contested)
    assert params["beta_rule"] == "auto: max(min(schedule, contested share), flagged share)"
    assert "topoprune.displacement" in res.manifest["timings_s"]
    # each class's cut (at least the capped schedule) of most-scored samples is never kept
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        beta_c = params["beta_per_class"][str(c)]
        assert beta_c >= contested
        top = members[np.argsort(-res.scores[members], kind="stable")[: int(beta_c * members.size)]]
        assert not np.isin(top, res.indices).any()


def test_auto_cut_keeps_the_schedule_on_contested_data(digits):
    """With a third of the labels moved, most samples are contested: the schedule (0.075) stands, and
    beta='auto' cuts as much as beta=0.075 given outright (or more, in classes with more flagged)."""
    x, y = digits
    rng = np.random.default_rng(0)
    noisy = y.copy()
    moved = rng.random(y.size) < 1 / 3
    noisy[moved] = (y[moved] + rng.integers(1, 10, moved.sum())) % 10
    res = topodata.select(x, noisy, rate=0.9, method="topoprune", random_state=0)
    params = res.manifest["params"]
    assert params["contested_share"] > 0.075 and params["beta"] == pytest.approx(0.075)
    assert min(params["beta_per_class"].values()) >= 0.075


def test_deterministic_and_seed_sensitive_h1(digits):
    x, y = digits
    a = _run(x, y, seed=3, manifold="none", h1_fraction=0.1)
    b = _run(x, y, seed=3, manifold="none", h1_fraction=0.1)
    np.testing.assert_array_equal(a.scores, b.scores)
    c = _run(x, y, seed=4, manifold="none", h1_fraction=0.1)  # another H1 subsample
    assert not np.array_equal(a.scores, c.scores)
    assert a.params["n_h1_neighbourhoods"] == 60


def test_gradient_moves_points_along_the_loss_gradient(digits):
    """One step: each displacement is lr · ‖∇_i Σ_P TP_2(P)‖, the autograd gradient of the summed
    H0 total persistence computed independently here; the fastest point moves step_size median
    deaths."""
    x, y = digits
    z = x[:200] / 16.0
    neigh = local_neighbourhoods(z, y[:200], 8)
    disp = topological_displacement(z, neigh, steps=1, step_size=0.5)
    zt = torch.tensor(z, dtype=torch.float32, requires_grad=True)
    h0_total_persistence(zt[torch.from_numpy(neigh)], p=2).backward()
    gnorm = zt.grad.norm(dim=1).numpy()
    assert (disp > 0).all()
    np.testing.assert_allclose(disp / gnorm, (disp / gnorm)[0], rtol=1e-3)
    med = np.median(h0_point_cloud(z[neigh]).deaths)
    np.testing.assert_allclose(disp.max(), 0.5 * med, rtol=1e-3)


def test_summary_scores(digits):
    x, y = digits
    tp = _run(x, y, manifold="none", score="total_persistence", k_local=8, label_weight=0)
    z = tp.extras["manifold"]
    neigh = local_neighbourhoods(z, y, 8)
    expected = diagram_summaries(h0_point_cloud(z[neigh]).deaths, p=2)["total_persistence_h0"]
    np.testing.assert_allclose(tp.scores, expected, rtol=1e-5)
    ent = _run(x, y, manifold="none", score="entropy", k_local=8, label_weight=0)
    assert np.isfinite(ent.scores).all() and ent.scores.max() <= np.log(8) + 1e-9
    h1 = _run(x[:150], y[:150], manifold="none", score="h1_count", k_local=8, neighbourhoods="global",
              label_weight=0)
    assert h1.scores.min() >= 0 and h1.scores.max() >= 1
    assert np.array_equal(h1.scores, np.round(h1.scores))


def test_label_disagreement_by_hand():
    # 4 points on a line, labels 0 0 1 1; each point's 2 nearest others
    idx = np.array([[0, 1, 2], [1, 0, 2], [2, 3, 1], [3, 2, 1]])
    np.testing.assert_array_equal(label_disagreement(idx, np.array([0, 0, 1, 1])), [0.5, 0.5, 0.5, 0.5])
    np.testing.assert_array_equal(label_disagreement(idx, np.array([0, 0, 0, 1])), [0, 0, 0.5, 1])
    with pytest.raises(TopodataInputError, match=r"knn_indices must have shape \(n_samples, k \+ 1\)"):
        label_disagreement(np.arange(4)[:, None], np.zeros(4))


def test_score_is_normalised_topology_plus_label_term(digits):
    """score = topological score / its max + label_weight · disagreement on the feature kNN graph
    (the graph UMAP gets, k = umap_neighbors); flipped labels rise to the top."""
    from topodata.neighbors import knn, l2_normalize

    x, y = digits
    y_noisy = y.copy()
    flip = np.arange(0, 600, 20)  # 30 samples relabelled to the next digit
    y_noisy[flip] = (y[flip] + 1) % 10
    pure = _run(x, y_noisy, manifold="none", k_local=8, label_weight=0)
    both = _run(x, y_noisy, manifold="none", k_local=8, label_weight=2.0)
    np.testing.assert_array_equal(both.extras["topological_scores"], pure.scores)
    dis = label_disagreement(knn(l2_normalize(x), 15)[0], y_noisy)
    np.testing.assert_allclose(both.scores, pure.scores / pure.scores.max() + 2.0 * dis, rtol=1e-12)
    assert both.params["label_weight"] == 2.0
    assert both.params["mean_label_disagreement"] == pytest.approx(dis.mean())
    top = np.argsort(-both.scores)[:30]
    assert np.isin(flip, top).mean() >= 0.8  # the flipped samples are the most disagreeing


def test_global_neighbourhoods_cross_classes(digits):
    x, y = digits
    neigh = local_neighbourhoods(x / 16.0, None, 10)
    assert neigh.shape == (600, 11) and (neigh[:, 0] == np.arange(600)).all()
    assert (y[neigh] != y[:, None]).any()
    per_class = local_neighbourhoods(x / 16.0, y, 10)
    assert (y[per_class] == y[:, None]).all()


def test_small_class_takes_the_whole_class():
    """A class of at most k_local samples: each neighbourhood is the whole class, padded with copies
    of the sample; its real H0 deaths are ripser's H0 of the class, the pads add zero deaths."""
    from ripser import ripser

    from topodata.scores._classflow import class_neighbourhoods

    z = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    nb = class_neighbourhoods(z, 16)
    assert nb.shape == (6, 17) and (nb[:, :12] == np.arange(6)[:, None]).all()
    for i in range(6):
        order = np.argsort(np.linalg.norm(z - z[i], axis=1), kind="stable")
        np.testing.assert_array_equal(nb[i, 11:], order)  # the class by distance, the sample first
    deaths = h0_point_cloud(z[nb]).deaths
    ref = np.sort(ripser(z, maxdim=0)["dgms"][0][:-1, 1])  # the finite deaths of the class
    np.testing.assert_array_equal(deaths[:, :11], 0.0)
    np.testing.assert_allclose(deaths[:, 11:], np.broadcast_to(ref, (6, 5)), rtol=1e-6)
    np.testing.assert_array_equal(class_neighbourhoods(z[:1], 16), np.zeros((1, 17), dtype=np.int64))


def test_small_classes_are_scored():
    """A rare class (10 samples, k_local=16) and a lone sample are scored, not refused; a lone
    sample does not move; the other classes' scores do not depend on them (per-class flow)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(51, 4))
    y = np.array([0] * 20 + [1] * 20 + [2] * 10 + [3])
    out = _run(x, y, manifold="none", label_weight=0.0, noise_vote=1.0)
    topo = out.extras["topological_scores"]
    assert np.isfinite(out.scores).all() and topo[50] == 0.0 and (topo[40:50] > 0).all()
    assert out.params["median_h0_death"] > 0
    again = _run(x, y, manifold="none", label_weight=0.0, noise_vote=1.0)
    np.testing.assert_array_equal(out.scores, again.scores)
    glob = _run(x, y, manifold="none", neighbourhoods="global")
    assert glob.scores.shape == (51,)


def test_select_keeps_rare_classes():
    """The default method on a 40 + 5 set: exact budgets, the rare class included, deterministic."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(45, 4))
    y = np.array([0] * 40 + [1] * 5)
    kw = dict(rate=0.5, method="topoprune", class_balance="proportional", method_params={"manifold": "none"})
    res = topodata.select(x, y, **kw)
    assert res.indices.size == n_kept(45, 0.5)
    want = class_budgets(y, n_kept(45, 0.5), balance="proportional")
    np.testing.assert_array_equal(np.bincount(y[res.indices]), [want[0], want[1]])
    assert want[1] == 3
    np.testing.assert_array_equal(topodata.select(x, y, **kw).indices, res.indices)


def test_balanced_vote_does_not_flag_a_rare_class_for_its_rarity():
    """A rare class (30) beside a large one (600) in a 2-d blob pair that overlaps, plus 10 large-class
    points given the rare label deep inside the large blob. The plain vote flags rare samples whose
    neighbours are large-class points by number; weighted by inverse class frequency it flags fewer
    of them, and still every planted label error (no neighbour shares its label; one rare neighbour
    would outweigh 20 large-class ones). Equal classes: the same flags either way."""
    rng = np.random.default_rng(0)
    big = rng.normal(0.0, 1.0, size=(600, 2))
    rare = rng.normal(1.5, 0.7, size=(30, 2))
    # a constant third coordinate: the feature graph is built on L2-normalised rows, which then keep the
    # plane's neighbourhoods (in 2-d they would keep angles only)
    x = np.c_[np.vstack([big, rare]), np.full(630, 10.0)]
    y = np.r_[np.zeros(600, int), np.ones(30, int)]
    far = np.flatnonzero(np.linalg.norm(big - [1.5, 1.5], axis=1) > 2.5)  # far from the rare blob
    planted = []
    for i in far:  # apart from each other: no planted point among another's neighbours
        if all(np.linalg.norm(big[i] - big[j]) > 1.0 for j in planted):
            planted.append(i)
    planted = np.array(planted[:6])
    y[planted] = 1
    kw = dict(manifold="none", label_weight=0.0)
    plain = _run(x, y, vote_weights="uniform", **kw).suspects
    weighted = _run(x, y, vote_weights="balanced", **kw).suspects
    true_rare = np.arange(600, 630)
    assert plain[planted].all() and weighted[planted].all()
    assert weighted[true_rare].sum() < plain[true_rare].sum()
    assert plain[true_rare].sum() >= 3  # the plain vote does flag rare samples here
    ye = np.repeat([0, 1], 315)  # equal classes
    np.testing.assert_array_equal(_run(x, ye, vote_weights="uniform", **kw).suspects,
                                  _run(x, ye, vote_weights="balanced", **kw).suspects)


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"score": "volume"}, TopodataInputError, "score must be one of"),
        ({"k_local": 1}, TopodataInputError, "k_local must be >= 2"),
        ({"steps": 0}, TopodataInputError, "steps must be >= 1"),
        ({"h1_fraction": 1.5}, TopodataInputError, "h1_fraction must be <= 1"),
        ({"density": "kde"}, TopodataInputError, "density must be one of"),
        ({"step_size": "big"}, TypeError, "step_size must be of type"),
        ({"n_jobs": 0}, TopodataInputError, "n_jobs must be a positive"),
        ({"label_weight": -1.0}, TopodataInputError, "label_weight must be >= 0"),
        ({"vote_weights": "inverse"}, TopodataInputError, "vote_weights must be one of"),
        ({"gamma": 1.0}, TopodataInputError, r"unknown option\(s\) \['gamma'\]; valid options: score"),
    ],
)
def test_bad_config(params, error, match):
    with pytest.raises(error, match=match):
        _run(np.zeros((40, 3)) + np.arange(40)[:, None], np.repeat([0, 1], 20), **params)


def test_config_is_cli_friendly():
    for f in dataclasses.fields(CONFIG):
        assert isinstance(f.default, (int, float, str, bool)) and f.metadata["help"]
    assert CONFIG(step_size=2).step_size == 2  # ints pass where floats are expected


def test_plots_are_png(density_run):
    from topodata.plots import plot_diagrams, plot_manifold

    out, on_circle = density_run
    labels = np.repeat([0, 1], 200)
    png = plot_manifold(out.extras["manifold"], labels, np.flatnonzero(on_circle))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_diagrams(out.extras["neighbourhoods"])[:4] == b"\x89PNG"
    with pytest.raises(TopodataInputError, match="kept_indices range"):
        plot_manifold(out.extras["manifold"], labels, [400])
    with pytest.raises(TopodataInputError, match="non-empty list"):
        plot_diagrams([])


def test_displacement_rejects_bad_neighbourhoods():
    z = np.random.default_rng(0).normal(size=(30, 3))
    with pytest.raises(TopodataInputError, match=r"neigh must be integer .* shape \(30, k \+ 1\)"):
        topological_displacement(z, np.zeros((29, 5), dtype=np.int64))
    with pytest.raises(TopodataInputError, match="steps must be >= 1"):
        topological_displacement(z, np.zeros((30, 5), dtype=np.int64), steps=0)
