"""The global manifold: UMAP fed by the FAISS kNN graph, standardised, deterministic."""

from __future__ import annotations

import os

import numpy as np
import pytest

from topodata._validation import TopodataInputError
from topodata.manifold import (
    density_fixture,
    enable_numba_cache,
    global_manifold,
    l2_normalize,
    standardize_columns,
)
from topodata.neighbors import knn


@pytest.fixture(scope="module")
def blobs():
    """300 points in 10-d: three Gaussian clusters (centres ~ N(0, 4²)), unit noise, seed 0."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(3, 10))
    return centres[np.repeat(np.arange(3), 100)] + rng.normal(size=(300, 10))


@pytest.fixture(scope="module")
def embeddings(blobs):
    """Two UMAP runs with seed 0: kNN computed inside, and the same kNN passed in."""
    z_inner = global_manifold(blobs, n_components=4, n_neighbors=10, random_state=0, n_epochs=100)
    graph = knn(l2_normalize(blobs), 12)  # more columns than needed: must be cut to 10
    z_given = global_manifold(blobs, n_components=4, n_neighbors=10, random_state=0, n_epochs=100,
                              knn=graph)
    return z_inner, z_given


def test_shape_and_standardisation(embeddings):
    z, _ = embeddings
    assert z.shape == (300, 4) and z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-4)


def test_deterministic_and_uses_given_knn(embeddings):
    """Same seed and same kNN graph ⇒ the identical embedding (UMAP single-threaded)."""
    z_inner, z_given = embeddings
    np.testing.assert_array_equal(z_inner, z_given)


def test_keeps_clusters_apart(embeddings, blobs):
    z, _ = embeddings
    labels = np.repeat(np.arange(3), 100)
    idx, _ = knn(z, 6)
    assert (labels[idx[:, 1:]] == labels[:, None]).mean() > 0.98


def test_method_none_returns_normalised_features(blobs):
    f = global_manifold(blobs, method="none")
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(f, global_manifold(blobs, n_components=None))


def test_helpers():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(l2_normalize(x), [[0.6, 0.8], [0, 0], [1, 0]], rtol=1e-6)
    s = standardize_columns(np.array([[1.0, 5.0], [3.0, 5.0]]))
    np.testing.assert_allclose(s, [[-1.0, 0.0], [1.0, 0.0]])


def test_numba_cache_dir_is_set():
    path = enable_numba_cache()
    if os.environ.get("TOPODATA_NUMBA_CACHE") == "0":
        assert path is None
    else:
        assert path == os.environ["NUMBA_CACHE_DIR"]
        assert enable_numba_cache() == path  # idempotent


def test_density_fixture_is_dense_blob_sparse_circle():
    x, y, on_circle = density_fixture(n_classes=2, n_blob=60, n_circle=20, random_state=1)
    assert x.shape == (160, 16) and y.tolist() == [0] * 80 + [1] * 80
    assert on_circle.sum() == 40
    _, d = knn(l2_normalize(x), 8)
    radius = d[:, 1:].mean(axis=1)
    assert radius[on_circle].mean() > 2.5 * radius[~on_circle].mean()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_neighbors": 300}, "n_neighbors must be <= 299"),
        ({"n_components": 0}, "n_components must be >= 1"),
        ({"method": "tsne"}, "method must be one of"),
        ({"min_dist": -1.0}, "min_dist must be >= 0"),
        ({"knn": (np.zeros((300, 15), np.int64), np.zeros((300, 15)))}, "own first neighbour"),
        ({"knn": (np.zeros((300, 5), np.int64), np.zeros((300, 5)))}, "5 neighbours per sample"),
        ({"knn": (np.zeros((10, 15), np.int64), np.zeros((10, 15)))}, r"shape \(300, k\)"),
        ({"knn": np.zeros((300, 15))}, "knn must be the"),
    ],
)
def test_bad_parameters(blobs, kwargs, match):
    with pytest.raises(TopodataInputError, match=match):
        global_manifold(blobs, **kwargs)


def test_bad_features():
    with pytest.raises(TopodataInputError, match="features contains NaN"):
        global_manifold(np.array([[1.0, np.inf], [0.0, 1.0], [1.0, 1.0]]))
