"""Near-duplicate groups from the kNN graph: the H0 bars of the feature space that die at ~0.

Two samples are near-duplicates when their L2-normalised features lie closer than ``threshold``;
groups are the connected components of that graph (single linkage, i.e. the H0 classes of the
Vietoris–Rips filtration cut at ``threshold``). With ``threshold='auto'`` the cut is
``AUTO_FACTOR`` times the median distance to the ``k``-th neighbour, a scale-free reading of
"much closer than typical neighbours" (the choice and its measurement: ``docs/algorithms.md#near-duplicates``).

Selection uses the groups to keep one member per group before any second copy
(:func:`dedup_rounds`), so that a budget is not spent on copies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _validation as V

__all__ = ["near_duplicate_groups", "dedup_rounds", "AUTO_FACTOR", "DEDUP_K"]

AUTO_FACTOR = 0.25  # threshold = AUTO_FACTOR * median distance to the DEDUP_K-th neighbour
DEDUP_K = 10  # neighbours examined per sample (a group larger than DEDUP_K + 1 still joins by chains)


def near_duplicate_groups(
    features: Any,
    *,
    threshold: float | str = "auto",
    k: int = DEDUP_K,
    knn_graph: tuple[np.ndarray, np.ndarray] | None = None,
    random_state: Any = 0,
) -> tuple[np.ndarray, float]:
    """Group ids of near-duplicate samples and the distance threshold used.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Rows are L2-normalised here (cosine geometry, as the manifold stage uses).
    threshold : float or 'auto', default='auto'
        Plain (not squared) L2 distance between normalised rows below which two samples are
        copies; ``'auto'``: ``AUTO_FACTOR`` × the median distance to the ``k``-th neighbour.
    k : int, default=10
        Neighbours per sample searched (exact FAISS kNN below 100,000 rows).
    knn_graph : (indices, squared distances) of shape (n_samples, >= k + 1), optional
        A kNN graph of the normalised features already computed (self in column 0).

    Returns
    -------
    groups : ndarray of int64, shape (n_samples,)
        Component id per sample, numbered by first appearance; a sample without copies is a
        group of its own.
    threshold : float

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [1.0, 1e-4], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    >>> near_duplicate_groups(x, threshold=0.01, k=2)[0].tolist()
    [0, 0, 1, 2, 3]
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    x = V.check_features(features, dtype=np.float32)
    n = x.shape[0]
    V.check_scalar(k, "k", (int, np.integer), min_val=1)
    k = int(min(k, n - 1))
    if knn_graph is None:
        from .neighbors import knn

        norms = np.linalg.norm(x, axis=1, keepdims=True)
        xn = np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)
        idx, d2 = knn(xn, k + 1, random_state=random_state)
    else:
        idx, d2 = (np.asarray(a) for a in knn_graph)
        if idx.shape[0] != n or idx.shape[1] < k + 1:
            raise V.TopodataInputError(f"knn_graph must have shape ({n}, >= {k + 1}); got {idx.shape}")
        idx, d2 = idx[:, : k + 1], d2[:, : k + 1]
    dist = np.sqrt(np.maximum(d2[:, 1:].astype(np.float64), 0.0))
    if threshold == "auto":
        thr = float(AUTO_FACTOR * np.median(dist[:, -1]))
    else:
        thr = float(V.check_scalar(threshold, "dedup threshold", (int, float), min_val=0.0))
    rows = np.repeat(np.arange(n), k)
    close = dist.ravel() < thr
    graph = coo_matrix((np.ones(int(close.sum())), (rows[close], idx[:, 1:].ravel()[close])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    # renumber by first appearance so ids do not depend on scipy's internal order
    _, first, inv = np.unique(comp, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inv].astype(np.int64), thr


def dedup_rounds(groups: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Rank of each sample inside its group by ``keys`` (0 = the group's representative).

    Round ``r`` holds the ``r``-th copy of every group that has one; taking whole rounds in order
    keeps one member per group before any group gives a second.

    >>> dedup_rounds(np.array([0, 0, 1, 0]), np.array([0.5, 0.1, 0.9, 0.3])).tolist()
    [2, 0, 0, 1]
    """
    order = np.lexsort((keys, groups))
    g = groups[order]
    start = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    pos = np.arange(g.size) - np.repeat(start, np.diff(np.r_[start, g.size]))
    rank = np.empty_like(pos)
    rank[order] = pos
    return rank.astype(np.int64)
