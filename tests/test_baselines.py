"""Baseline selection methods: hand-checked fixtures, exact budgets, determinism, end to end."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from topodata._validation import TopodataInputError
from topodata.scores import get_method
from topodata.scores.d2 import d2
from topodata.scores.herding import herding_order
from topodata.scores.kcenter import kcenter, kcenter_greedy
from topodata.scores.moderate import moderate
from topodata.select import class_budgets, n_kept, select
from topodata.train.dynamics import TrainingDynamics

torch.set_num_threads(1)

BASELINES = ["moderate", "kcenter", "herding", "el2n", "forgetting", "aum", "ccs", "d2"]
SELF_SELECTING = ["moderate", "kcenter", "herding", "d2"]


def _dynamics(n: int, seed: int = 0, n_epochs: int = 6) -> TrainingDynamics:
    """Random but valid dynamics: every sample seen every epoch."""
    rng = np.random.default_rng(seed)
    margin = rng.normal(size=(n_epochs, n))
    return TrainingDynamics(margin > 0, margin, rng.random((n_epochs, n)))


def _run(method, x, y, *, rate=0.9, seed=0, dynamics=None, **params):
    budgets = class_budgets(y, n_kept(len(y), rate))
    out = get_method(method).load()(
        x, y, budgets=budgets, rng=np.random.default_rng(seed), dynamics=dynamics, **params
    )
    return out, budgets


def test_moderate_keeps_the_window_around_the_median_distance():
    # class 0 on a line: median 2.5, distances 2.5, 1.5, .5, .5, 7.5, 8.5 -> median distance 2.0
    # -> keep ranks 2..3 of 6: distances 1.5 and 2.5. Class 1: median (0, 0), distances 1, 2, 3,
    # 4, 0 -> keep ranks 1..3 of 5: distances 1, 2, 3
    x = np.array([[0.0, 0], [1, 0], [2, 0], [3, 0], [10, 0], [11, 0],
                  [0, 1], [0, -2], [0, 3], [0, -4], [0, 0]])
    y = np.repeat([0, 1], [6, 5])
    out = moderate(x, y, budgets={0: 2, 1: 3}, rng=np.random.default_rng(0))
    np.testing.assert_allclose(out.scores, [2.5, 1.5, 0.5, 0.5, 7.5, 8.5, 1, 2, 3, 4, 0])
    assert out.indices.tolist() == [0, 1, 6, 7, 8]


def test_kcenter_greedy_matches_hand_computation():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [10.0, 0.0]])
    picked, score = kcenter_greedy(x, 4, start=0)
    # farthest from {0} is (10,0); then (5,5) at √50; then the tie (1,0)/(0,1) at 1 -> lower index
    assert picked.tolist() == [0, 4, 3, 1]
    np.testing.assert_allclose(score, [np.nan, 1.0, 1.0, np.sqrt(50), 10.0])


def test_kcenter_start_comes_from_rng_and_covers():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 3))
    y = np.zeros(200, dtype=np.int64)
    a = kcenter(x, y, budgets={0: 20}, rng=np.random.default_rng(1))
    b = kcenter(x, y, budgets={0: 20}, rng=np.random.default_rng(1))
    c = kcenter(x, y, budgets={0: 20}, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)
    # covering radius of the greedy set beats a random set of the same size
    def radius(idx):
        return np.sqrt(((x[:, None] - x[idx][None]) ** 2).sum(-1)).min(1).max()
    assert radius(a.indices) < radius(np.random.default_rng(0).choice(200, 20, replace=False))


def test_herding_tracks_the_class_mean():
    x = np.array([[0.0], [1.0], [2.0], [5.0]])  # mean 2
    # running means 2, 1.5, 2.67: each pick is the one closest to the mean target
    assert herding_order(x, 4).tolist() == [2, 1, 3, 0]
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(300, 4))
    picks = herding_order(xs, 15)
    rand = rng.choice(300, 15, replace=False)
    err = lambda idx: np.linalg.norm(xs[idx].mean(0) - xs.mean(0))  # noqa: E731
    assert err(picks) < 0.2 * err(rand)


def test_d2_spreads_picks_over_both_clusters():
    rng = np.random.default_rng(0)
    a = rng.normal(scale=0.3, size=(30, 2))
    b = rng.normal(scale=0.3, size=(30, 2)) + 10.0
    x = np.concatenate([a, b])
    y = np.zeros(60, dtype=np.int64)
    # cluster a is harder (lower margins) than cluster b everywhere
    margin = np.concatenate([-rng.uniform(0.6, 1.0, 30), -rng.uniform(0.2, 0.55, 30)])
    dyn = TrainingDynamics(np.zeros((1, 60), bool), margin[None], np.zeros((1, 60)))
    out = d2(x, y, budgets={0: 10}, rng=np.random.default_rng(0), dynamics=dyn)
    in_b = (out.indices >= 30).sum()
    assert 0 < in_b < 10
    # without reverse message passing the same scores would keep cluster a only
    top = np.argsort(-out.scores, kind="stable")[:10]
    assert (top < 30).all()


def test_d2_reverse_passing_off_keeps_the_top_scores():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3))
    y = np.zeros(40, dtype=np.int64)
    out = d2(x, y, budgets={0: 8}, rng=np.random.default_rng(0), dynamics=_dynamics(40),
             gamma_reverse=1e9)
    np.testing.assert_array_equal(np.sort(out.indices), np.sort(np.argsort(-out.scores, kind="stable")[:8]))


@pytest.mark.parametrize("method", BASELINES)
@pytest.mark.parametrize("with_dynamics", [False, True])
def test_select_end_to_end_exact_budgets(blobs, method, with_dynamics):
    x, y = blobs
    dyn = _dynamics(len(y)) if with_dynamics else None
    res = select(x, y, rate=0.9, method=method, random_state=0, dynamics=dyn)
    budgets = class_budgets(y, n_kept(len(y), 0.9))
    assert res.indices.size == sum(budgets.values())
    assert np.all(np.diff(res.indices) > 0) and res.indices.dtype == np.int64
    assert {c: int((y[res.indices] == c).sum()) for c in budgets} == budgets
    assert res.scores.shape == (len(y),) and res.scores.dtype == np.float64
    assert res.manifest["method"] == method
    if get_method(method).uses_dynamics:
        assert res.manifest["params"]["dynamics"] == ("recorded" if with_dynamics else
                                                      "fallback: linear softmax head on the features, 20 epochs")


@pytest.mark.parametrize("method", SELF_SELECTING)
@pytest.mark.parametrize("rate", [0.3, 0.95])
def test_self_selecting_methods_meet_budgets_at_other_rates(blobs, method, rate):
    x, y = blobs
    out, budgets = _run(method, x, y, rate=rate, dynamics=_dynamics(len(y)))
    assert np.unique(out.indices).size == out.indices.size
    assert {c: int((y[out.indices] == c).sum()) for c in budgets} == budgets


@pytest.mark.parametrize("method", BASELINES)
def test_same_seed_same_indices(blobs, method):
    x, y = blobs
    a = select(x, y, rate=0.8, method=method, random_state=7)
    b = select(x, y, rate=0.8, method=method, random_state=7)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize("method", ["kcenter", "ccs"])
def test_random_start_methods_change_with_the_seed(blobs, method):
    x, y = blobs
    dyn = _dynamics(len(y))
    a = select(x, y, rate=0.8, method=method, random_state=1, dynamics=dyn)
    b = select(x, y, rate=0.8, method=method, random_state=2, dynamics=dyn)
    assert not np.array_equal(a.indices, b.indices)


def test_ccs_drops_the_hardest_and_covers_the_rest():
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=(n, 2))
    y = np.zeros(n, dtype=np.int64)
    dyn = _dynamics(n, seed=3)
    res = select(x, y, rate=0.75, method="ccs", dynamics=dyn, beta=0.1, n_strata=10, random_state=0)
    s = res.scores
    hardest = np.argsort(-s, kind="stable")[:40]
    assert not np.isin(res.indices, hardest).any()
    assert res.manifest["params"]["beta"] == 0.1 and res.manifest["params"]["beta_rule"] == "given"
    # coverage: the kept scores span the kept range instead of clustering in the middle
    kept = s[res.indices]
    rest = np.delete(s, hardest)
    assert kept.min() <= np.quantile(rest, 0.02) and kept.max() >= np.quantile(rest, 0.95)


def test_ccs_auto_beta_follows_the_authors_cut_offs(blobs):
    x, y = blobs
    dyn = _dynamics(len(y))
    for rate, beta in ((0.9, 0.3), (0.8, 0.2), (0.5, 0.0)):
        res = select(x, y, rate=rate, method="ccs", dynamics=dyn, random_state=0)
        assert res.manifest["params"]["beta"] == pytest.approx(beta)
        per_class = np.bincount(y)
        hardest = np.concatenate([np.flatnonzero(y == c)[np.argsort(-res.scores[y == c], kind="stable")]
                                  [: int(np.floor(beta * per_class[c] + 1e-9))] for c in range(3)])
        assert not np.isin(res.indices, hardest).any()


def test_ccs_takes_the_sampler_of_select(blobs):
    x, y = blobs
    dyn = _dynamics(len(y))
    a = select(x, y, rate=0.8, method="ccs", dynamics=dyn, sampler="key", random_state=0)
    b = select(x, y, rate=0.8, method="ccs", dynamics=dyn, sampler="draw", random_state=0)
    assert a.manifest["params"]["sampler"] == "key" and b.manifest["params"]["sampler"] == "draw"
    assert not np.array_equal(a.indices, b.indices)


def test_d2_mis_ratio_cuts_the_hardest_before_the_graph():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(100, 3))
    y = np.zeros(100, dtype=np.int64)
    dyn = _dynamics(100, seed=5)
    out = d2(x, y, budgets={0: 20}, rng=np.random.default_rng(0), dynamics=dyn, mis_ratio=0.4)
    assert np.isnan(out.scores).sum() == 40 and not np.isin(out.indices, np.flatnonzero(np.isnan(out.scores))).any()
    from topodata.scores.dynamics import difficulty_scores

    diff, _, _ = difficulty_scores(x, y, dyn, score="aum", rng=np.random.default_rng(0), fallback_epochs=20)
    np.testing.assert_array_equal(np.sort(np.flatnonzero(np.isnan(out.scores))), np.sort(np.argsort(-diff, kind="stable")[:40]))


@pytest.mark.parametrize(
    "method,params,exc,match",
    [
        ("ccs", {"score": "loss"}, TopodataInputError, "score must be one of"),
        ("ccs", {"beta": 0.1}, TypeError, "unexpected keyword argument 'beta'"),
        ("d2", {"mis_ratio": 1.0}, TopodataInputError, "mis_ratio must be < 1"),
        ("d2", {"n_neighbors": 0}, TopodataInputError, "n_neighbors must be >= 1"),
        ("d2", {"gamma_forward": -1.0}, TopodataInputError, "gamma_forward must be >= 0.0"),
        ("d2", {"knn_method": "ball"}, TopodataInputError, "knn_method must be one of"),
        ("el2n", {"epochs": 0}, TopodataInputError, "epochs must be >= 1"),
        ("aum", {"fallback_epochs": 0}, TopodataInputError, "fallback_epochs must be >= 1"),
        ("kcenter", {"k": 3}, TypeError, "unexpected keyword argument 'k'"),
    ],
)
def test_bad_hyper_parameters_are_named(blobs, method, params, exc, match):
    x, y = blobs
    with pytest.raises(exc, match=match):
        _run(method, x, y, **params)


def test_dynamics_of_another_length_is_refused(blobs):
    x, y = blobs
    with pytest.raises(TopodataInputError, match="dynamics records 10 samples but features have 300"):
        select(x, y, rate=0.9, method="aum", dynamics=_dynamics(10))
    with pytest.raises(TypeError, match="dynamics must be a TrainingDynamics"):
        select(x, y, rate=0.9, method="forgetting", dynamics=np.zeros((3, 300)))


def test_configs_are_cli_friendly():
    import importlib

    configs = {}
    for name in BASELINES:
        module = importlib.import_module(get_method(name).target.split(":")[0])
        configs[name] = module.CONFIGS[name] if hasattr(module, "CONFIGS") else module.CONFIG
    for name, cfg in configs.items():
        for f in dataclasses.fields(cfg):
            assert f.type in (int, float, str, bool), (name, f.name, f.type)  # real types for argparse
            assert f.metadata.get("help"), (name, f.name)
        out, _ = _run(name, *_small(), dynamics=_dynamics(40))
        assert dataclasses.asdict(cfg()).items() <= out.params.items() or name == "ccs"


def _small():
    rng = np.random.default_rng(9)
    return rng.normal(size=(40, 3)), np.repeat([0, 1], 20)
