"""Shared, seeded fixtures. The cache goes to a repo-local folder so tests never touch ~/.cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TOPODATA_CACHE", str(REPO / ".cache" / "tests"))
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def blobs():
    """300 points in 5-D, 3 classes of 120/100/80 samples, class means apart."""
    rng = np.random.default_rng(0)
    sizes = [120, 100, 80]
    x = np.concatenate([rng.normal(loc=3 * c, size=(s, 5)) for c, s in enumerate(sizes)])
    y = np.repeat(np.arange(3), sizes)
    return x, y


@pytest.fixture
def one_thread():
    """One torch and BLAS thread: on the shared 2-core machine two contended threads are far slower."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


@pytest.fixture
def built_indices(monkeypatch):
    """The FAISS index types (``'exact'``, ``'ivf'``, ...) built during the test, in order."""
    import topodata.neighbors as N

    built = []
    build = N._build_index
    monkeypatch.setattr(N, "_build_index", lambda x, k, method, rng: built.append(method) or build(x, k, method, rng))
    return built


def save_arrays(tmp_path, n_per_class: int, dim: int, n_classes: int = 4):
    """Gaussian features and balanced labels saved as ``f.npy``/``y.npy``: ``(fx, fy, x, y)`` for CLI tests."""
    x = np.random.default_rng(0).normal(size=(n_per_class * n_classes, dim)).astype(np.float32)
    y = np.repeat(np.arange(n_classes), n_per_class)
    fx, fy = tmp_path / "f.npy", tmp_path / "y.npy"
    np.save(fx, x)
    np.save(fy, y)
    return fx, fy, x, y
