"""Score extrapolation: the kNN and GCN extrapolators, the checks, select() and the CLI with score_fraction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from topodata._meta import n_kept, stratified_subset
from topodata._validation import TopodataInputError
from topodata.cli import main
from topodata.extrapolate import (
    EXTRAPOLABLE,
    NOT_EXTRAPOLABLE,
    check_extrapolation,
    gnn_extrapolate,
    knn_extrapolate,
    scored_samples,
)
from topodata.nn.dynamics import TrainingDynamics

from conftest import save_arrays
from topodata.scores import available_methods
from topodata.select import select


# --- kNN ---------------------------------------------------------------------------------------


def test_knn_keeps_exact_scores_when_every_sample_is_scored(blobs):
    x, _ = blobs
    s = np.random.default_rng(1).normal(size=x.shape[0])
    res = knn_extrapolate(x, np.ones(x.shape[0], bool), s, k=5)
    assert np.array_equal(res.scores, s)


def test_knn_reproduces_the_score_of_an_exact_copy(blobs):
    """An unscored sample identical to a scored one gets that score exactly (k=1, distance 0)."""
    x, _ = blobs
    s = np.random.default_rng(1).normal(size=x.shape[0])
    xx = np.vstack([x, x[:50]])
    mask = np.r_[np.ones(x.shape[0], bool), np.zeros(50, bool)]
    res = knn_extrapolate(xx, mask, s, k=1)
    assert np.array_equal(res.scores[x.shape[0]:], s[:50])
    # exp weights with an exact copy among k=3 neighbours: the copy has weight 1, others less
    res3 = knn_extrapolate(xx, mask, s, k=3, weighting="exp")
    assert np.all(np.isfinite(res3.scores))


def test_knn_hand_worked_weighted_mean():
    # scored points on a line at 0, 1, 3 with scores 1, 3, 10; unscored at 0.25
    x = np.array([[0.0], [1.0], [3.0], [0.25]])
    mask = np.array([True, True, True, False])
    s = np.array([1.0, 3.0, 10.0])
    w1, w2, w3 = math.exp(-0.25), math.exp(-0.75), math.exp(-2.75)
    got2 = knn_extrapolate(x, mask, s, k=2, weighting="exp").scores
    assert got2[:3].tolist() == s.tolist()
    assert got2[3] == pytest.approx((w1 * 1 + w2 * 3) / (w1 + w2), rel=1e-6)
    got3 = knn_extrapolate(x, mask, s, k=3, weighting="exp").scores[3]
    assert got3 == pytest.approx((w1 * 1 + w2 * 3 + w3 * 10) / (w1 + w2 + w3), rel=1e-6)
    assert knn_extrapolate(x, mask, s, k=2, weighting="mean").scores[3] == pytest.approx(2.0)
    # k larger than the scored set: all of it; values given per sample are read at the mask
    full = np.array([1.0, 3.0, 10.0, np.nan])
    assert knn_extrapolate(x, mask, full, k=50, weighting="mean").scores[3] == pytest.approx(14 / 3)


def test_knn_validation_spearman_on_a_smooth_score(blobs):
    x, _ = blobs
    s = x[:, 0] + 0.5 * x[:, 1]
    mask = np.zeros(x.shape[0], bool)
    mask[::2] = True
    a = knn_extrapolate(x, mask, s[mask], k=5, random_state=3)
    b = knn_extrapolate(x, mask, s[mask], k=5, random_state=3)
    assert a.validation_spearman == b.validation_spearman > 0.8
    assert spearmanr(a.scores[~mask], s[~mask]).statistic > 0.9
    assert a.params["k"] == 5 and a.params["weighting"] == "exp"


def test_knn_bad_inputs():
    x = np.zeros((4, 2))
    with pytest.raises(TopodataInputError, match="boolean"):
        knn_extrapolate(x, np.array([1, 0, 1, 0]), [1.0, 2.0])
    with pytest.raises(TopodataInputError, match="no sample"):
        knn_extrapolate(x, np.zeros(4, bool), [])
    with pytest.raises(TopodataInputError, match="one value per scored sample"):
        knn_extrapolate(x, np.array([True, False, True, False]), [1.0, 2.0, 3.0])
    with pytest.raises(TopodataInputError, match="finite"):
        knn_extrapolate(x, np.array([True, False, True, False]), [1.0, np.nan])
    with pytest.raises(TopodataInputError, match="weighting"):
        knn_extrapolate(x, np.array([True, False, True, False]), [1.0, 2.0], weighting="gauss")


# --- GNN ---------------------------------------------------------------------------------------


def _two_clusters(n=240, seed=0):
    """Two elongated clusters (a segment each, far apart); the score varies slowly along each
    segment and is offset between them: smooth on the kNN graph."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    t = rng.uniform(0, 10, size=n)
    x = np.column_stack([t, 30.0 * y, 0.3 * rng.normal(size=(n, 4))])
    score = 2.0 * y + np.sin(t / 4.0)
    mask = np.zeros(n, bool)
    mask[rng.choice(n, n // 3, replace=False)] = True
    return x, y, score, mask


def test_gnn_learns_a_smooth_score_on_two_clusters(one_thread):
    x, y, score, mask = _two_clusters()
    res = gnn_extrapolate(x, y, mask, score[mask], k=8, epochs=150, hidden=(64, 32), random_state=0, device="cpu")
    # the cluster offset alone ranks at about 0.87: > 0.9 needs the within-cluster variation too
    rho = spearmanr(res.scores[~mask], score[~mask]).statistic
    assert rho > 0.9, rho
    assert np.array_equal(res.scores[mask], score[mask])
    assert res.params["hidden"] == [64, 32] and res.params["training"].startswith("full-batch")
    assert math.isfinite(res.validation_spearman)


def test_gnn_is_deterministic_for_a_seed(one_thread):
    x, y, score, mask = _two_clusters(n=120, seed=1)
    kw = dict(k=5, epochs=20, hidden=(16, 8), device="cpu")
    a = gnn_extrapolate(x, y, mask, score[mask], random_state=7, **kw)
    b = gnn_extrapolate(x, y, mask, score[mask], random_state=7, **kw)
    c = gnn_extrapolate(x, y, mask, score[mask], random_state=8, **kw)
    assert np.array_equal(a.scores, b.scores) and a.validation_spearman == b.validation_spearman
    assert not np.array_equal(a.scores, c.scores)


def test_gnn_bad_options():
    x, y, score, mask = _two_clusters(n=40)
    with pytest.raises(TopodataInputError, match="hidden"):
        gnn_extrapolate(x, y, mask, score[mask], hidden=(8,))
    with pytest.raises(TopodataInputError, match="dropout"):
        gnn_extrapolate(x, y, mask, score[mask], dropout=1.0)
    with pytest.raises(TopodataInputError, match="labels"):
        gnn_extrapolate(x, y[:-1], mask, score[mask])


# --- checks ------------------------------------------------------------------------------------


def test_every_method_is_either_extrapolable_or_refused_with_a_reason():
    assert set(EXTRAPOLABLE) | set(NOT_EXTRAPOLABLE) == set(available_methods())
    assert not set(EXTRAPOLABLE) & set(NOT_EXTRAPOLABLE)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, float("nan")])
def test_bad_fraction(fraction):
    with pytest.raises(TopodataInputError, match="score_fraction"):
        check_extrapolation("el2n", fraction, "knn", None)


def test_bad_extrapolation_options():
    with pytest.raises(TopodataInputError, match="extrapolate must be one of"):
        check_extrapolation("el2n", 0.1, "mlp", None)
    with pytest.raises(TopodataInputError, match="no option 'epochs'"):
        check_extrapolation("el2n", 0.1, "knn", {"epochs": 5})
    with pytest.raises(TopodataInputError, match="k must be >= 1"):
        check_extrapolation("el2n", 0.1, "gnn", {"k": 0})
    with pytest.raises(TopodataInputError, match="need score_fraction"):
        check_extrapolation("el2n", None, "gnn", None)
    with pytest.raises(TopodataInputError, match="mis_ratio"):
        check_extrapolation("d2", 0.1, "knn", None, method_params={"mis_ratio": 0.2})
    with pytest.raises(TopodataInputError, match="given scores"):
        check_extrapolation(None, 0.1, "knn", None, scores_given=True)
    assert check_extrapolation("d2", 0.2, None, None)[:2] == (0.2, "knn")
    assert check_extrapolation("el2n", None, None, None) is None


@pytest.mark.parametrize("method", sorted(NOT_EXTRAPOLABLE))
def test_methods_without_a_sample_score_are_refused(method, blobs):
    x, y = blobs
    with pytest.raises(TopodataInputError, match=f"method '{method}' cannot be extrapolated"):
        select(x, y, rate=0.5, method=method, score_fraction=0.3)


def test_scored_samples_follow_the_dynamics_or_a_stratified_draw():
    y = np.repeat([0, 1, 2], [30, 20, 10])
    seen_idx = stratified_subset(y, 0.2, np.random.default_rng(5))
    margin = np.full((3, y.size), np.nan, np.float32)
    margin[:, seen_idx] = 1.0
    d = TrainingDynamics(np.zeros(margin.shape, bool), margin, margin)
    assert np.array_equal(scored_samples(y, 0.2, dynamics=d), seen_idx)
    with pytest.raises(TopodataInputError, match="proxy_fraction=0.5"):
        scored_samples(y, 0.5, dynamics=d)
    drawn = scored_samples(y, 0.5, random_state=1)
    assert np.array_equal(drawn, stratified_subset(y, 0.5, np.random.default_rng(1)))
    assert np.bincount(y[drawn]).tolist() == [15, 10, 5]


# --- select() end to end -----------------------------------------------------------------------


def test_select_on_digits_with_score_fraction(one_thread):
    from sklearn.datasets import load_digits

    from topodata.scores.dynamics import el2n

    x, y = load_digits(return_X_y=True)
    res = select(x, y, rate=0.8, method="el2n", score_fraction=0.3, random_state=0,
                 method_params={"fallback_epochs": 5})
    assert res.indices.size == n_kept(y.size, 0.8) and np.isfinite(res.scores).all()
    ex = res.manifest["params"]["extrapolation"]
    assert ex["score_fraction"] == 0.3 and ex["extrapolator"] == "knn" and ex["params"]["k"] == 20
    assert ex["n_scored"] == stratified_subset(y, 0.3, np.random.default_rng(0)).size
    assert -1 <= ex["validation_spearman"] <= 1 and "el2n.extrapolate" in res.manifest["timings_s"]
    # the scored samples carry exactly the scores el2n gives on that subset with the same stream
    rng = np.random.default_rng(0)
    sc = stratified_subset(y, 0.3, rng)
    direct = el2n(x[sc].astype(np.float64), y[sc], budgets={}, rng=rng, fallback_epochs=5).scores
    np.testing.assert_array_equal(res.scores[sc], direct)
    again = select(x, y, rate=0.8, method="el2n", score_fraction=0.3, random_state=0,
                   method_params={"fallback_epochs": 5})
    assert np.array_equal(res.indices, again.indices)


def test_select_topoprune_with_score_fraction_keeps_dedup_and_suspects(blobs):
    x, y = blobs
    res = select(x, y, rate=0.5, method="topoprune", score_fraction=0.5, random_state=0,
                 method_params={"umap_neighbors": 10, "k_local": 8, "umap_epochs": 100})
    assert res.indices.size == n_kept(y.size, 0.5) and np.isfinite(res.scores).all()
    assert res.manifest["params"]["dedup"] is not None  # TopoPrune's default near-duplicate handling still runs
    assert res.extras["suspects"].shape == (y.size,)
    # the scored fraction's contested share reaches the auto cut (here the schedule is 0 at rate 0.5)
    params = res.manifest["params"]
    assert 0 <= params["contested_share"] <= 1 and params["beta"] == 0.0
    assert params["beta_rule"] == "auto: max(min(schedule, contested share), flagged share)"
    assert "manifold" not in res.extras  # coordinates of the fraction only: not offered for plots


# --- CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def arrays(tmp_path):
    return save_arrays(tmp_path, 50, 6)[:2]


@pytest.mark.parametrize("extra, match", [
    (["--method", "el2n", "--score-fraction", "1.0"], "score_fraction must be < 1"),
    (["--method", "el2n", "--score-fraction", "0"], "score_fraction must be > 0"),
    (["--method", "kcenter", "--score-fraction", "0.2"], "cannot be extrapolated"),
    (["--method", "random", "--score-fraction", "0.2"], "cannot be extrapolated"),
    (["--method", "el2n", "--extrapolate", "gnn"], "need score_fraction"),
    (["--method", "el2n", "--score-fraction", "0.2", "--extrapolate-epochs", "5"], "no option 'epochs'"),
    (["--method", "el2n", "--score-fraction", "0.2", "--extrapolate", "gnn", "--extrapolate-hidden", "64"],
     "hidden must be two"),
    (["--method", "el2n", "--score-fraction", "0.2", "--extrapolate", "gnn", "--extrapolate-hidden", "a,b"],
     "--extrapolate-hidden"),
])
def test_cli_bad_extrapolation_exits_2_and_writes_nothing(tmp_path, arrays, capsys, extra, match):
    fx, fy = arrays
    out = tmp_path / "out"
    code = main(["select", "--embeddings", str(fx), "--labels", str(fy), "--rate", "0.5", *extra, "--out", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert code == 2 and len(err) == 1 and match in err[0], err
    assert not out.exists()


def test_cli_proxy_fraction_other_than_the_scored_one_fails_before_embedding(tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TOPODATA_CACHE", str(cache))
    out = tmp_path / "out"
    code = main(["select", "--dataset", "digits", "--rate", "0.5", "--method", "el2n", "--score-fraction", "0.2",
                 "--proxy-fraction", "0.5", "--out", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert code == 2 and len(err) == 1 and "proxy_fraction=0.5 with score_fraction=0.2" in err[0], err
    assert not out.exists() and not (cache / "embeddings").exists()


def test_cli_unknown_extrapolator_is_an_argparse_error(tmp_path, arrays, capsys):
    fx, fy = arrays
    with pytest.raises(SystemExit) as exc:
        main(["select", "--embeddings", str(fx), "--labels", str(fy), "--rate", "0.5", "--method", "el2n",
              "--score-fraction", "0.2", "--extrapolate", "mlp", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and not (tmp_path / "o").exists()


def test_cli_score_fraction_writes_the_manifest(tmp_path, arrays, capsys):
    import json

    fx, fy = arrays
    out = tmp_path / "out"
    code = main(["select", "--embeddings", str(fx), "--labels", str(fy), "--rate", "0.5", "--method", "aum",
                 "--aum-fallback-epochs", "3", "--score-fraction", "0.25", "--extrapolate-k", "5", "-q",
                 "--out", str(out)])
    assert code == 0
    m = json.loads((out / "manifest.json").read_text())
    ex = m["params"]["extrapolation"]
    assert ex["score_fraction"] == 0.25 and ex["params"]["k"] == 5 and ex["n_scored"] == 52
    assert np.isfinite(np.load(out / "scores.npy")).all()
