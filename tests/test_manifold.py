"""The global manifold: UMAP fed by the FAISS kNN graph, standardised, deterministic."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from topodata._validation import TopodataInputError
from topodata.manifold import (
    density_fixture,
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


def test_deterministic(embeddings):
    """Same seed and same kNN graph ⇒ the identical embedding (UMAP single-threaded)."""
    z_inner, z_given = embeddings
    np.testing.assert_array_equal(z_inner, z_given)


def test_uses_given_knn(blobs, embeddings):
    """A kNN graph of *other* points replaces the one of ``features``: the embedding follows its clusters.

    The graph groups the 300 rows by ``i % 3`` (interleaved), while the features group them in blocks
    of 100. If the graph were ignored, UMAP would rebuild the block clusters.
    """
    z_inner, _ = embeddings
    blocks = np.repeat(np.arange(3), 100)
    interleaved = np.arange(300) % 3
    rng = np.random.default_rng(1)
    other = rng.normal(scale=4.0, size=(3, 10))[interleaved] + rng.normal(size=(300, 10))
    graph = knn(l2_normalize(other), 10)
    z = global_manifold(blobs, n_components=4, n_neighbors=10, random_state=0, n_epochs=100, knn=graph)
    assert not np.allclose(z, z_inner)
    idx, _ = knn(z, 6)
    assert (interleaved[idx[:, 1:]] == interleaved[:, None]).mean() > 0.98
    assert (blocks[idx[:, 1:]] == blocks[:, None]).mean() < 0.5
    # the embedding of the features themselves keeps the blocks
    idx, _ = knn(z_inner, 6)
    assert (blocks[idx[:, 1:]] == blocks[:, None]).mean() > 0.98


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


_CACHE_PROBE = """
import json, os
from topodata.manifold import enable_numba_cache
path = enable_numba_cache()
again = enable_numba_cache()
out = {"path": path, "again": again, "env": os.environ.get("NUMBA_CACHE_DIR")}
if path is not None:
    import numba.core.config, umap.layouts
    umap.layouts.clip(3.0)  # one small umap kernel: compiled into, or loaded from, the disk cache
    stats = umap.layouts.clip.stats
    out.update(config=numba.core.config.CACHE_DIR, kernel_cache=stats.cache_path,
               cache_lookups=sum(stats.cache_hits.values()) + sum(stats.cache_misses.values()))
print(json.dumps(out))
"""


def _cache_probe(**env):
    """Run :func:`enable_numba_cache` in a fresh process with only the given cache variables set."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("NUMBA_CACHE_DIR", "TOPODATA_NUMBA_CACHE", "TOPODATA_CACHE")}
    environ.update(env)
    proc = subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=environ, capture_output=True,
                          text=True, timeout=300, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# The cache directory the test session already uses (conftest sets TOPODATA_CACHE), so that the
# subprocesses find umap's and pynndescent's kernels compiled; a fresh directory costs ~40 s.
_WARM_TOPODATA_CACHE = os.environ["TOPODATA_CACHE"]


@pytest.mark.slow
def test_numba_cache_dir_is_set():
    """Documented default: ``$TOPODATA_CACHE/numba``, and umap's kernels are cached there."""
    expected = os.path.join(_WARM_TOPODATA_CACHE, "numba")
    out = _cache_probe(TOPODATA_CACHE=_WARM_TOPODATA_CACHE)
    assert out["path"] == out["again"] == out["env"] == out["config"] == expected
    assert out["kernel_cache"].startswith(expected + os.sep)
    assert out["cache_lookups"] >= 1


@pytest.mark.slow
def test_numba_cache_respects_user_dir_and_opt_out(tmp_path):
    own = os.path.join(_WARM_TOPODATA_CACHE, "numba")  # a user-set NUMBA_CACHE_DIR wins over TOPODATA_CACHE
    out = _cache_probe(TOPODATA_CACHE=str(tmp_path), NUMBA_CACHE_DIR=own)
    assert out["path"] == out["env"] == out["config"] == own
    assert out["kernel_cache"].startswith(own + os.sep)
    assert not (tmp_path / "numba").exists()
    out = _cache_probe(TOPODATA_CACHE=str(tmp_path), TOPODATA_NUMBA_CACHE="0")
    assert out == {"path": None, "again": None, "env": None}
    assert not (tmp_path / "numba").exists()


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


def test_pca_start_is_another_deterministic_layout():
    from topodata.manifold import global_manifold

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(3 * np.eye(5)[c], 1, size=(60, 5)) for c in range(3)])
    pca = global_manifold(x, n_components=2, n_epochs=20, init="pca", random_state=0)
    np.testing.assert_array_equal(pca, global_manifold(x, n_components=2, n_epochs=20, init="pca", random_state=0))
    assert not np.allclose(pca, global_manifold(x, n_components=2, n_epochs=20, random_state=0))
    with pytest.raises(ValueError, match="init"):
        global_manifold(x, n_components=2, init="random")
