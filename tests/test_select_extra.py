"""Paths of ``topodata.select`` and TopoPrune not covered elsewhere: ``sampler='draw'`` and densMAP."""

from __future__ import annotations

import numpy as np
import pytest

import topodata
from topodata._validation import TopodataInputError
from topodata.manifold import density_fixture
from topodata.neighbors import knn
from topodata.scores.topoprune import topoprune


@pytest.fixture(scope="module")
def graded():
    """Two classes of 200 with scores on a grid: 10 equal-width strata of exactly 20 samples each.

    Class 1's samples are interleaved with class 0's and its scores shuffled, so that neither index
    order nor score order gives away a stratum.
    """
    rng = np.random.default_rng(5)
    labels = np.tile([0, 1], 200)
    scores = np.empty(400)
    scores[labels == 0] = np.arange(200) / 199
    scores[labels == 1] = rng.permutation(np.arange(200) / 199) * 3.0 + 1.0  # another range, same strata
    within = np.empty(400)
    for c in (0, 1):
        s = scores[labels == c]
        within[labels == c] = (s - s.min()) / (s.max() - s.min())
    stratum = np.minimum(np.floor(within * 10), 9).astype(int)
    return scores, labels, stratum


def _precomputed(graded, sampler, seed=0):
    scores, labels, _ = graded
    return topodata.select(None, labels, rate=0.9, scores=scores, beta=0.0, n_strata=10, sampler=sampler,
                           random_state=seed)


@pytest.mark.parametrize("sampler", ["draw", "key"])
def test_sampler_spreads_budget_evenly_over_strata(graded, sampler):
    """Keep 40 of 400 over 10 strata per class: 2 per stratum and class, whichever sampler."""
    _, labels, stratum = graded
    res = _precomputed(graded, sampler)
    assert res.indices.dtype == np.int64 and res.indices.size == 40
    assert np.all(np.diff(res.indices) > 0)
    assert res.manifest["params"]["sampler"] == sampler
    for c in (0, 1):
        kept = res.indices[labels[res.indices] == c]
        np.testing.assert_array_equal(np.bincount(stratum[kept], minlength=10), np.full(10, 2))


def test_draw_is_seeded_and_differs_from_key(graded):
    draw = _precomputed(graded, "draw", seed=0)
    np.testing.assert_array_equal(draw.indices, _precomputed(graded, "draw", seed=0).indices)
    assert not np.array_equal(draw.indices, _precomputed(graded, "draw", seed=1).indices)
    assert not np.array_equal(draw.indices, _precomputed(graded, "key", seed=0).indices)


def test_draw_is_uniform_inside_a_stratum(graded):
    """Over 30 seeds ``draw`` keeps the members of one stratum about equally often (2 of its 20 each
    time), which a sampler that took, e.g., the lowest scores or indices of the stratum would not."""
    _, labels, stratum = graded
    counts = np.zeros(400)
    for seed in range(30):
        counts[_precomputed(graded, "draw", seed=seed).indices] += 1
    # each member of a stratum of 20 is kept with probability 2/20: 3 times in 30 draws on average
    members = (labels == 0) & (stratum == 4)
    assert counts[members].sum() == 60
    assert counts[members].max() <= 10 and (counts[members] > 0).sum() >= 15


def test_draw_through_a_method():
    """``sampler`` reaches a coverage method's selection: same scores and class counts, other picks."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(loc=3 * c, size=(150, 6)) for c in range(3)])
    y = np.repeat(np.arange(3), 150)
    opts = {"rate": 0.8, "method": "topoprune", "random_state": 0,
            "method_params": {"manifold": "none", "k_local": 8}}
    key = topodata.select(x, y, **opts)
    draw = topodata.select(x, y, sampler="draw", **opts)
    again = topodata.select(x, y, sampler="draw", **opts)
    assert draw.manifest["params"]["strategy"] == "coverage"
    assert draw.manifest["params"]["sampler"] == "draw" and key.manifest["params"]["sampler"] == "key"
    np.testing.assert_array_equal(draw.scores, key.scores)
    assert draw.manifest["class_counts_kept"] == key.manifest["class_counts_kept"]
    assert sum(key.manifest["class_counts_kept"].values()) == 90
    np.testing.assert_array_equal(draw.indices, again.indices)
    assert not np.array_equal(draw.indices, key.indices)


def test_bad_sampler():
    with pytest.raises(TopodataInputError, match="sampler must be one of"):
        topodata.select(None, np.repeat([0, 1], 10), rate=0.5, scores=np.arange(20.0), sampler="stratified")


@pytest.mark.slow
def test_topoprune_densmap_keeps_density():
    """``manifold='densmap'`` runs umap-learn's density-preserving objective: on the density fixture the
    sparse circle keeps a larger manifold kNN radius than the dense blob, which plain UMAP equalises."""
    x, y, on_circle = density_fixture(n_classes=2, n_blob=150, n_circle=50, random_state=0)
    common = {"umap_epochs": 100, "n_components": 4}
    outs = {m: topoprune(x, y, budgets={0: 40, 1: 40}, rng=np.random.default_rng(0), manifold=m, **common)
            for m in ("umap", "densmap")}

    def radius_ratio(z):
        _, d = knn(z, 8)
        r = d[:, 1:].mean(axis=1)
        return r[on_circle].mean() / r[~on_circle].mean()

    dens, plain = outs["densmap"], outs["umap"]
    assert dens.params["manifold"] == "densmap"
    z = dens.extras["manifold"]
    assert z.shape == (400, 4) and z.dtype == np.float32
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-4)
    assert radius_ratio(z) > 2.5 > 1.5 > radius_ratio(plain.extras["manifold"])
    assert dens.scores.shape == (400,) and np.isfinite(dens.scores).all()
    assert not np.allclose(dens.scores, plain.scores)
    # seeded like the rest: the same call gives the same scores
    again = topoprune(x, y, budgets={0: 40, 1: 40}, rng=np.random.default_rng(0), manifold="densmap", **common)
    np.testing.assert_array_equal(again.scores, dens.scores)
