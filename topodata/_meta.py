"""Package-wide facts that every layer may import: library versions and the counting rules.

A leaf module (standard library and numpy only), so ``data``, ``embed``, ``weights``, ``select`` and
the CLI can share them without importing each other.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["versions", "n_kept", "largest_remainder", "stratified_subset"]

_DISTRIBUTIONS = ("topodata", "numpy", "scipy", "scikit-learn", "torch", "torchvision", "umap-learn",
                  "faiss-cpu", "ripser", "numba", "torch-geometric")


def versions() -> dict[str, str]:
    """Versions of the libraries that decide the result, for manifests and ``topodata env``."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in _DISTRIBUTIONS:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def n_kept(n: int, rate: float) -> int:
    """Kept count of ``n`` items when a fraction ``rate`` is removed: ``n - floor(rate * n)``.

    One rule for data pruning (``select``) and weight pruning (IMP's sparsity). A tiny epsilon
    guards against ``0.9 * 10 = 8.999999…`` style float errors.

    >>> n_kept(10, 0.9), n_kept(7, 0.5)
    (1, 4)
    """
    return int(n - math.floor(rate * n + 1e-9))


def largest_remainder(counts, total: int) -> np.ndarray:
    """Split ``total`` over groups proportionally to ``counts`` so that the shares sum exactly to it.

    Each share is ``floor(total * c / sum)`` or one more; the units left over go to the largest
    remainders, ties in group order (a stable sort).

    >>> largest_remainder([50, 30, 20], 7).tolist()
    [4, 2, 1]
    """
    counts = np.asarray(counts, dtype=np.float64)
    exact = total * counts / counts.sum()
    base = np.floor(exact).astype(np.int64)
    base[np.argsort(-(exact - base), kind="stable")[: int(total - base.sum())]] += 1
    return base


def stratified_subset(labels, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a class-stratified random ``fraction`` of ``labels``.

    Each class keeps ``max(1, round(fraction * n_c))`` samples (half rounds up), drawn without
    replacement from ``rng``. One rule for the proxy's training subset (``embed``) and the scored
    subset of score extrapolation (``extrapolate``), so that the two coincide.

    >>> stratified_subset(np.repeat([0, 1], [10, 4]), 0.5, np.random.default_rng(0)).size
    7
    """
    labels = np.asarray(labels)
    kept = []
    for c in np.unique(labels):  # a loop over classes, not samples
        idx = np.flatnonzero(labels == c)
        k = max(1, int(math.floor(fraction * idx.size + 0.5)))
        kept.append(rng.choice(idx, size=min(k, idx.size), replace=False))
    return np.sort(np.concatenate(kept)).astype(np.int64)
