"""Tests for the persistence core: agreement with ripser/scipy, gradients, known topology, errors."""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest
import torch
from ripser import ripser
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import cdist

from topodata.topology import (
    H1Diagram,
    diagram_summaries,
    h0_point_cloud,
    h0_total_persistence,
    h1_point_cloud,
    h1_point_cloud_batch,
    h1_total_persistence,
    mst_dense,
    spanning_tree_pairs,
)

torch.set_num_threads(1)
SIZES = [2, 5, 33, 100]
DIMS = [1, 2, 8]


def ripser_h0(x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # "more columns than rows" for n < d
        warnings.simplefilter("ignore")
        dgm = ripser(x, maxdim=0)["dgms"][0]
    return np.sort(dgm[np.isfinite(dgm[:, 1]), 1])


def noisy_circle(n: int = 40, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, n)
    return np.c_[np.cos(t), np.sin(t)] + noise * rng.normal(size=(n, 2))


# ----------------------------------------------------------------------------- H0 vs ripser
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("d", DIMS)
def test_h0_matches_ripser_numpy_and_torch(n, d):
    x = np.random.default_rng(10 * n + d).normal(size=(n, d))
    expected = ripser_h0(x)
    h0 = h0_point_cloud(x)
    assert isinstance(h0.deaths, np.ndarray) and h0.deaths.shape == (n - 1,)
    np.testing.assert_allclose(h0.deaths, expected, atol=1e-6)
    ht = h0_point_cloud(torch.from_numpy(x))
    assert isinstance(ht.deaths, torch.Tensor) and ht.edges.dtype == torch.int64
    np.testing.assert_allclose(ht.deaths.numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(ht.edges.numpy(), h0.edges)
    # critical edges have exactly the reported lengths, smaller id first
    lengths = np.linalg.norm(x[h0.edges[:, 0]] - x[h0.edges[:, 1]], axis=1)
    np.testing.assert_allclose(lengths, h0.deaths, rtol=0, atol=1e-12)
    assert np.all(h0.edges[:, 0] < h0.edges[:, 1])
    assert np.all(np.diff(h0.deaths) >= 0)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_h0_batched_equals_ripser_per_cloud_and_chunking(lib):
    x = np.random.default_rng(1).normal(size=(23, 33, 8))
    xin = torch.from_numpy(x) if lib == "torch" else x
    full = h0_point_cloud(xin, batch_size=None)
    chunked = h0_point_cloud(xin, batch_size=5)
    deaths = np.asarray(full.deaths)
    assert deaths.shape == (23, 32) and tuple(full.edges.shape) == (23, 32, 2)
    np.testing.assert_array_equal(np.asarray(chunked.deaths), deaths)
    np.testing.assert_array_equal(np.asarray(chunked.edges), np.asarray(full.edges))
    for i in range(len(x)):
        np.testing.assert_allclose(deaths[i], ripser_h0(x[i]), atol=1e-6)


def test_h0_float32_and_other_metrics():
    x = np.random.default_rng(2).normal(size=(30, 4))
    h32 = h0_point_cloud(x.astype(np.float32))
    assert h32.deaths.dtype == np.float32
    np.testing.assert_allclose(h32.deaths, ripser_h0(x), rtol=1e-5)
    for p, metric in [(1, "cityblock"), (np.inf, "chebyshev"), (3, "minkowski")]:
        D = cdist(x, x, metric=metric, **({"p": 3} if p == 3 else {}))
        dgm = ripser(D, maxdim=0, distance_matrix=True)["dgms"][0]
        expected = np.sort(dgm[np.isfinite(dgm[:, 1]), 1])
        np.testing.assert_allclose(h0_point_cloud(x, p_metric=p).deaths, expected, atol=1e-5)


def test_h0_duplicate_points_have_zero_deaths_and_finite_gradient():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    h0 = h0_point_cloud(x)
    assert h0.deaths.tolist() == [0.0, 1.0, 2.0]
    h0_total_persistence(x).backward()
    assert torch.isfinite(x.grad).all()


def test_h0_empty_batch_and_single_point_clouds():
    h0 = h0_point_cloud(np.zeros((0, 5, 2)))
    assert h0.deaths.shape == (0, 4) and h0.edges.shape == (0, 4, 2)
    assert h0_point_cloud(np.zeros((3, 1, 2))).deaths.shape == (3, 0)


@pytest.mark.parametrize(
    "points, kwargs, match",
    [
        (np.zeros(5), {}, r"shape \(n_points, n_dims\)"),
        (np.zeros((2, 0, 3)), {}, "at least one point"),
        (np.array([[0.0, np.inf], [1.0, 1.0]]), {}, "NaN or inf"),
        (np.zeros((4, 2)), {"p_metric": 0.5}, "p_metric must be >= 1"),
        (np.zeros((4, 2)), {"batch_size": 0}, "batch_size must be >= 1"),
    ],
)
def test_h0_rejects_bad_input(points, kwargs, match):
    with pytest.raises(ValueError, match=match):
        h0_point_cloud(points, **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_h0_and_losses_on_cuda_match_cpu():
    x = np.random.default_rng(7).normal(size=(50, 33, 8))
    cpu = h0_point_cloud(torch.from_numpy(x))
    xc = torch.tensor(x, device="cuda", requires_grad=True)
    gpu = h0_point_cloud(xc)
    assert gpu.deaths.device.type == "cuda" and gpu.edges.device.type == "cuda"
    np.testing.assert_array_equal(gpu.edges.cpu().numpy(), cpu.edges.numpy())
    np.testing.assert_allclose(gpu.deaths.detach().cpu().numpy(), cpu.deaths.numpy(), atol=1e-12)
    h0_total_persistence(xc).backward()
    assert xc.grad.device.type == "cuda" and torch.isfinite(xc.grad).all()
    D = torch.cdist(xc[0], xc[0], compute_mode="donot_use_mm_for_euclid_dist").detach()
    edges, weights = mst_dense(D)
    assert edges.device.type == "cuda"
    np.testing.assert_allclose(weights.cpu().numpy(), cpu.deaths[0].numpy(), atol=1e-9)


# ----------------------------------------------------------------------------- mst_dense
def test_mst_dense_matches_scipy_and_is_batched():
    rng = np.random.default_rng(3)
    B, n = 7, 12
    W = rng.uniform(0.1, 1.0, size=(B, n, n))
    W = np.triu(W, 1) + np.triu(W, 1).transpose(0, 2, 1)
    edges, weights = mst_dense(W)
    assert edges.shape == (B, n - 1, 2) and weights.shape == (B, n - 1)
    for b in range(B):
        ref = minimum_spanning_tree(W[b]).toarray()
        assert weights[b].sum() == pytest.approx(ref.sum(), rel=1e-12)
        np.testing.assert_array_equal(weights[b], W[b][edges[b, :, 0], edges[b, :, 1]])
        assert np.all(np.diff(weights[b]) >= 0)
    et, wt = mst_dense(torch.from_numpy(W))
    np.testing.assert_array_equal(et.numpy(), edges)
    np.testing.assert_array_equal(wt.numpy(), weights)
    assert mst_dense(W, return_weights=False).shape == (B, n - 1, 2)


def test_mst_dense_gradient_flows_to_D_and_ties_are_deterministic():
    D = torch.ones(4, 4, dtype=torch.float64, requires_grad=True)
    edges, weights = mst_dense(D)
    assert edges.tolist() == [[0, 1], [0, 2], [0, 3]]  # all ties: star around vertex 0
    weights.sum().backward()
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[0, 1:] = 1
    torch.testing.assert_close(D.grad, expected)


def test_mst_dense_disconnected_graph_gets_inf_edges():
    inf = np.inf
    D = np.array([[0, 1, inf, inf], [1, 0, inf, inf], [inf, inf, 0, 2], [inf, inf, 2, 0]])
    edges, weights = mst_dense(D)
    assert weights.tolist() == [1.0, 2.0, inf]
    assert edges[:2].tolist() == [[0, 1], [2, 3]]
    _, wt = mst_dense(torch.from_numpy(D))
    assert wt.tolist() == [1.0, 2.0, inf]


def test_mst_dense_single_vertex():
    edges, weights = mst_dense(np.zeros((3, 1, 1)))
    assert edges.shape == (3, 0, 2) and weights.shape == (3, 0)


@pytest.mark.parametrize(
    "D, match",
    [
        (np.zeros((3, 4)), "square"),
        (np.zeros(5), r"shape \(n, n\)"),
        (np.zeros((2, 2, 2, 2)), r"shape \(n, n\)"),
        (np.array([[0, np.nan], [np.nan, 0]]), "NaN"),
        (np.array([[0, 1.0], [2.0, 0]]), "symmetric"),
        (np.zeros((2, 0, 0)), "at least one vertex"),
    ],
)
def test_mst_dense_rejects_bad_input(D, match):
    with pytest.raises(ValueError, match=match):
        mst_dense(D)


def test_mst_dense_rejects_non_numeric():
    with pytest.raises(TypeError, match="numeric"):
        mst_dense(np.array([["a", "b"], ["c", "d"]]))


# ----------------------------------------------------------------------------- spanning_tree_pairs
def test_spanning_tree_pairs_maximum_on_a_2x3_layer():
    # |W| / max|W| of a 2 -> 3 layer; inputs are vertices 0, 1, outputs 2, 3, 4.
    W = np.array([[0.9, 0.1, 0.4], [0.3, 1.0, 0.2]])
    u = np.repeat([0, 1], 3)
    v = np.tile([2, 3, 4], 2)
    pairs, ids = spanning_tree_pairs(u, v, W.ravel(), 5, maximum=True)
    # Kruskal by decreasing weight: 1.0 (1-3), 0.9 (0-2), 0.4 (0-4), 0.3 (1-2) joins {0,2,4}+{1,3};
    # 0.2 and 0.1 close cycles.
    np.testing.assert_array_equal(pairs, [[1, 1.0], [1, 0.9], [1, 0.4], [1, 0.3]])
    np.testing.assert_array_equal(ids, [4, 0, 2, 3])


def test_spanning_tree_pairs_minimum_matches_scipy_total_weight():
    rng = np.random.default_rng(4)
    n, m = 60, 400
    u, v = rng.integers(0, n, m), rng.integers(0, n, m)
    w = rng.uniform(0.5, 2.0, m)
    pairs, ids = spanning_tree_pairs(u, v, w, n)
    # scipy keeps one weight per (row, col) entry of a matrix: feed it the same simple graph
    keep = u != v
    lo, hi = np.minimum(u, v)[keep], np.maximum(u, v)[keep]
    dense = np.full((n, n), np.inf)
    np.minimum.at(dense, (lo, hi), w[keep])
    dense[~np.isfinite(dense)] = 0
    ref = minimum_spanning_tree(coo_matrix(dense))
    n_components = n - ref.nnz
    assert len(pairs) == n - n_components
    assert pairs[:, 1].sum() == pytest.approx(ref.sum(), rel=1e-12)
    assert np.all(pairs[:, 0] == 0) and np.all(np.diff(pairs[:, 1]) >= 0)
    np.testing.assert_array_equal(pairs[:, 1], w[ids])


def test_spanning_tree_pairs_parallel_edges_loops_and_isolated_vertices():
    # two parallel edges 0-1 (the lighter one wins), a self-loop, and isolated vertex 3
    pairs, ids = spanning_tree_pairs([0, 1, 2, 1], [1, 0, 2, 2], [5.0, 2.0, 0.1, 3.0], 4)
    np.testing.assert_array_equal(pairs, [[0, 2.0], [0, 3.0]])
    np.testing.assert_array_equal(ids, [1, 3])


@pytest.mark.parametrize(
    "args, match",
    [
        (([0], [5], [1.0], 3), r"\[0, n_vertices=3\)"),
        (([0, 1], [1], [1.0], 3), "same length"),
        (([0], [1], [np.nan], 3), "finite"),
        (([0], [1], [1.0], 0), "n_vertices"),
    ],
)
def test_spanning_tree_pairs_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        spanning_tree_pairs(*args)


# ----------------------------------------------------------------------------- H1
@pytest.mark.parametrize("n, d", [(12, 2), (30, 3), (40, 8)])
def test_h1_matches_ripser_and_edges_have_the_values(n, d):
    x = np.random.default_rng(n + d).normal(size=(n, d))
    h1 = h1_point_cloud(x)
    expected = ripser(x, maxdim=1)["dgms"][1]
    np.testing.assert_allclose(
        h1.pairs[np.lexsort(h1.pairs.T)], expected[np.lexsort(expected.T)], rtol=1e-6
    )
    D32 = cdist(x, x).astype(np.float32)
    for edges, col in [(h1.birth_edges, 0), (h1.death_edges, 1)]:
        assert np.all(edges[:, 0] < edges[:, 1])
        np.testing.assert_array_equal(D32[edges[:, 0], edges[:, 1]], h1.pairs[:, col].astype(np.float32))
    assert h1.edges.shape == (len(h1.pairs), 4)


def test_noisy_circle_has_one_dominant_h1_pair():
    h1 = h1_point_cloud(noisy_circle())
    life = np.sort(h1.pairs[:, 1] - h1.pairs[:, 0])[::-1]
    assert life[0] > 1.0
    assert len(life) == 1 or life[1] < 0.2 * life[0]


def test_h1_batch_equals_single_calls_for_any_n_jobs():
    x = np.stack([noisy_circle(seed=s, n=25) for s in range(4)])
    single = [h1_point_cloud(c) for c in x]
    for n_jobs in (1, 2):
        batch = h1_point_cloud_batch(x, n_jobs=n_jobs)
        assert len(batch) == 4
        for a, b in zip(batch, single):
            np.testing.assert_array_equal(a.edges, b.edges)
            np.testing.assert_array_equal(a.pairs, b.pairs)
    ragged = h1_point_cloud_batch([x[0], x[1, :10]])
    np.testing.assert_array_equal(ragged[0].pairs, single[0].pairs)


def test_h1_small_clouds_are_empty():
    h1 = h1_point_cloud(np.eye(3))
    assert h1.pairs.shape == (0, 2) and h1.edges.shape == (0, 4)


def test_h1_rejects_bad_input():
    with pytest.raises(ValueError, match="h1_point_cloud_batch"):
        h1_point_cloud(np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match="NaN or inf"):
        h1_point_cloud(np.array([[0.0, np.nan], [1, 1]]))
    with pytest.raises(ValueError, match="n_jobs"):
        h1_point_cloud_batch(np.zeros((2, 5, 2)), n_jobs=0)
    with pytest.raises(ValueError, match="p_metric"):
        h1_point_cloud(np.zeros((5, 2)), p_metric=0.5)


# ----------------------------------------------------------------------------- losses
def central_difference(f, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    grad = torch.zeros_like(x)
    flat = x.detach().clone().reshape(-1)
    for i in range(flat.numel()):
        up, down = flat.clone(), flat.clone()
        up[i] += eps
        down[i] -= eps
        grad.reshape(-1)[i] = (f(up.reshape(x.shape)) - f(down.reshape(x.shape))) / (2 * eps)
    return grad


def test_h0_loss_gradient_matches_finite_differences():
    x = torch.tensor(np.random.default_rng(5).normal(size=(2, 7, 3)), requires_grad=True)
    loss = h0_total_persistence(x, p=2)
    loss.backward()
    fd = central_difference(lambda z: float(h0_total_persistence(z, p=2)), x)
    torch.testing.assert_close(x.grad, fd, atol=1e-6, rtol=1e-5)
    per = h0_total_persistence(x, reduction="none")
    assert per.shape == (2,)
    torch.testing.assert_close(per.sum(), loss)
    torch.testing.assert_close(h0_total_persistence(x, reduction="mean"), loss / 2)


def test_h1_loss_gradient_matches_finite_differences_and_diagram():
    x = torch.tensor(noisy_circle(n=12, noise=0.1, seed=6), requires_grad=True)
    h1 = h1_point_cloud(x)
    assert len(h1.pairs) >= 1
    loss = h1_total_persistence(x, h1.edges, p=2)
    expected = float(((h1.pairs[:, 1] - h1.pairs[:, 0]) ** 2).sum())
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    loss.backward()
    fd = central_difference(lambda z: float(h1_total_persistence(z, h1.edges, p=2)), x)
    torch.testing.assert_close(x.grad, fd, atol=1e-6, rtol=1e-5)


def test_h1_loss_batched_with_empty_diagrams():
    clouds = np.stack([noisy_circle(n=15, seed=s) for s in range(3)])
    dgms = h1_point_cloud_batch(clouds)
    dgms[1] = H1Diagram(np.zeros((0, 2)), np.zeros((0, 2), np.int64), np.zeros((0, 2), np.int64))
    per = h1_total_persistence(torch.from_numpy(clouds), dgms, p=1, reduction="none")
    assert per.shape == (3,) and float(per[1]) == 0.0
    assert float(per[0]) == pytest.approx(float(np.sum(dgms[0].pairs[:, 1] - dgms[0].pairs[:, 0])), rel=1e-5)


def test_losses_reject_bad_input():
    x = torch.zeros(5, 2)
    with pytest.raises(ValueError, match="reduction"):
        h0_total_persistence(x, reduction="max")
    with pytest.raises(ValueError, match="p must be >"):
        h0_total_persistence(x, p=0)
    with pytest.raises(ValueError, match=r"shape \(n_pairs, 4\)"):
        h1_total_persistence(x, np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="outside"):
        h1_total_persistence(x, [[0, 1, 2, 9]])
    with pytest.raises(ValueError, match="sequence of 2"):
        h1_total_persistence(torch.zeros(2, 5, 2), np.zeros((1, 4), np.int64))


# ----------------------------------------------------------------------------- summaries
def test_diagram_summaries_vectorised_over_batch():
    clouds = np.stack([noisy_circle(n=20, seed=s) for s in range(3)])
    h0 = h0_point_cloud(clouds)
    h1 = h1_point_cloud_batch(clouds)
    s = diagram_summaries(h0.deaths, h1, p=2)
    for i in range(3):
        one = diagram_summaries(h0.deaths[i], h1[i], p=2)
        for key, value in one.items():
            assert s[key][i] == pytest.approx(value, rel=1e-12), key
        q = h0.deaths[i] / h0.deaths[i].sum()
        assert one["persistence_entropy_h0"] == pytest.approx(-(q * np.log(q)).sum())
        assert one["total_persistence_h0"] == pytest.approx((h0.deaths[i] ** 2).sum())
        assert one["n_pairs_h1"] == len(h1[i].pairs)
    empty = diagram_summaries(np.zeros((2, 3)), [np.zeros((0, 2)), [[0.0, 1.0]]])
    assert empty["persistence_entropy_h0"].tolist() == [0.0, 0.0]
    assert empty["n_pairs_h1"].tolist() == [0, 1] and empty["total_persistence_h1"].tolist() == [0.0, 1.0]


def test_diagram_summaries_rejects_bad_input():
    with pytest.raises(ValueError, match="finite"):
        diagram_summaries([1.0, np.inf])
    with pytest.raises(ValueError, match="one \\(m_i, 2\\) diagram per"):
        diagram_summaries(np.ones((2, 3)), [np.zeros((0, 2))])


# ----------------------------------------------------------------------------- docs
@pytest.mark.parametrize("module", ["spanning_tree", "rips_h1", "losses", "summaries"])
def test_docstring_examples(module):
    mod = __import__(f"topodata.topology.{module}", fromlist=["_"])
    result = doctest.testmod(mod)
    assert result.attempted > 0 and result.failed == 0
