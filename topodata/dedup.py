"""Near-duplicate groups from the kNN graph: the H0 bars of the feature space that die at ~0.

Two samples are near-duplicates when their L2-normalised features lie closer than ``threshold``;
groups are the connected components of that graph (single linkage, i.e. the H0 classes of the
Vietoris–Rips filtration cut at ``threshold``). With ``threshold='auto'`` the cut is
``FEATURE_FACTOR`` times the median distance to the ``k``-th neighbour, a scale-free reading of
"much closer than typical neighbours" (the choice and its measurement: ``docs/algorithms.md#near-duplicates``).

For images, :func:`image_duplicate_groups` finds copies in the pixels instead: a network trained
to classify maps every image of a class close together, so a shifted copy is no nearer in its
features than another image of the class; the pixels, compared at the best small shift, tell them
apart (``docs/algorithms.md#near-duplicates``).

Selection uses the groups to keep one member per group before any second copy
(:func:`dedup_rounds`), so that a budget is not spent on copies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _validation as V

__all__ = ["near_duplicate_groups", "image_duplicate_groups", "dedup_rounds", "AUTO_FACTOR", "FEATURE_FACTOR", "DEDUP_K", "MAX_SHIFT"]

AUTO_FACTOR = 0.25  # images: threshold = AUTO_FACTOR * median RMS difference to the DEDUP_K-th candidate
# features: threshold = FEATURE_FACTOR * median L2 distance to the DEDUP_K-th neighbour. It is the cut that
# was measured (docs/algorithms.md#near-duplicates): 0.25 of the median on the square root of the distance.
FEATURE_FACTOR = 0.0625
DEDUP_K = 10  # neighbours examined per sample (a group larger than DEDUP_K + 1 still joins by chains)
MAX_SHIFT = 2  # pixels an image copy may be moved by along each axis (relative to another copy)
FOURIER_KEEP = 8  # lowest spatial frequencies per axis in the candidate search of image copies


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
        copies; ``'auto'``: ``FEATURE_FACTOR`` × the median distance to the ``k``-th neighbour.
    k : int, default=10
        Neighbours per sample searched (exact FAISS kNN below 100,000 rows).
    knn_graph : (indices, dists) of shape (n_samples, >= k + 1), optional
        A kNN graph of the normalised features already computed, as :func:`topodata.neighbors.knn`
        returns it (plain L2 distances, self in column 0).

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
    >>> near_duplicate_groups(x, threshold=0.01, k=2)[0].tolist()  # rows 0 and 1 lie 1e-4 apart
    [0, 0, 1, 2, 3]
    >>> near_duplicate_groups(x, threshold=1e-5, k=2)[0].tolist()
    [0, 1, 2, 3, 4]
    """
    x = V.check_features(features, dtype=np.float32)
    n = x.shape[0]
    V.check_scalar(k, "k", (int, np.integer), min_val=1)
    k = int(min(k, n - 1))
    if knn_graph is None:
        from .neighbors import knn, l2_normalize

        idx, d = knn(l2_normalize(x), k + 1, random_state=random_state)
    else:
        idx, d = (np.asarray(a) for a in knn_graph)
        if idx.shape[0] != n or idx.shape[1] < k + 1 or d.shape != idx.shape:
            raise V.TopodataInputError(f"knn_graph must have shape ({n}, >= {k + 1}); got {idx.shape}")
        idx, d = idx[:, : k + 1], d[:, : k + 1]
    dist = d[:, 1:].astype(np.float64)
    if threshold == "auto":
        thr = float(FEATURE_FACTOR * np.median(dist[:, -1]))
    else:
        thr = float(V.check_scalar(threshold, "dedup threshold", (int, float), min_val=0.0))
    return _components(idx[:, 1:], dist < thr), thr


def _components(neighbours: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Connected components of the graph ``i -- neighbours[i, j]`` for every ``close[i, j]``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n, k = neighbours.shape
    rows = np.repeat(np.arange(n), k)
    close = close.ravel()
    graph = coo_matrix((np.ones(int(close.sum())), (rows[close], neighbours.ravel()[close])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    # renumber by first appearance so ids do not depend on scipy's internal order
    _, first, inv = np.unique(comp, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inv].astype(np.int64)


def image_duplicate_groups(
    images: Any,
    *,
    threshold: float | str = "auto",
    max_shift: int = MAX_SHIFT,
    k: int = DEDUP_K,
    random_state: Any = 0,
    batch_size: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, float]:
    """Group ids of near-duplicate images (copies up to a small shift and faint noise).

    Candidates are the ``k`` nearest images by the magnitude of their low spatial frequencies
    (unchanged by a circular shift, nearly so by a small one on a dark border); each candidate
    pair is then compared in the pixels at its best relative shift of at most ``max_shift``
    pixels per axis, over the interior (``max_shift`` pixels off every edge, which a shift
    empties). Groups are the connected components of the pairs closer than ``threshold``.

    Parameters
    ----------
    images : array-like of shape (n_samples, channels, height, width)
        Pixel values on one scale for all images (e.g. [0, 1]).
    threshold : float or 'auto', default='auto'
        Root-mean-square pixel difference of an aligned pair below which the two are copies;
        ``'auto'``: ``AUTO_FACTOR`` × the median aligned difference to the ``k``-th candidate.
    max_shift : int, default=2
        Largest relative shift per axis tried between two images.
    k : int, default=10
        Candidates per image.
    batch_size : int, optional
        Images compared per step; default: as many as keep one step's differences near 4 MB
        (small steps stay in the processor's cache, which is what bounds the speed here).
    progress : bool, default=False
        A tqdm bar over the comparison batches.

    Returns
    -------
    groups : ndarray of int64, shape (n_samples,)
        Component id per image, numbered by first appearance.
    threshold : float

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.random((3, 1, 12, 12)) * np.pad(np.ones((8, 8)), 2)  # dark border
    >>> copy = np.roll(a[0], (1, -1), axis=(1, 2)) + 0.001
    >>> image_duplicate_groups(np.concatenate([a, copy[None]]), threshold=0.01, k=2)[0].tolist()
    [0, 1, 2, 0]
    """
    x = V.as_float32(images)
    if x.ndim != 4 or min(x.shape) == 0:
        raise V.TopodataInputError(f"images must have shape (n, channels, height, width); got {x.shape}")
    if not np.isfinite(x).all():
        raise V.TopodataInputError("images contain NaN or infinite values")
    n, _, h, w = x.shape
    V.check_scalar(max_shift, "max_shift", (int, np.integer), min_val=0, max_val=(min(h, w) - 1) // 2)
    V.check_scalar(k, "k", (int, np.integer), min_val=1)
    k, s = int(min(k, n - 1)), int(max_shift)
    if batch_size is None:
        batch_size = max(1, 2**20 // max(1, k * x.shape[1] * (h - 2 * s) * (w - 2 * s)))
    V.check_scalar(batch_size, "batch_size", (int, np.integer), min_val=1)
    if k < 1:
        return np.zeros(n, dtype=np.int64), float("nan")
    from .neighbors import knn, l2_normalize

    idx, _ = knn(l2_normalize(_fourier_magnitude(x)), k + 1, random_state=random_state)
    idx = idx[:, 1:]
    best = np.empty((n, k), dtype=np.float32)
    from tqdm.auto import tqdm

    starts = range(0, n, batch_size)
    for lo in tqdm(starts, desc="image copies", disable=not progress, leave=False):  # batches bound the memory
        best[lo:lo + batch_size] = _aligned_rms(x[lo:lo + batch_size], x, idx[lo:lo + batch_size], s)
    if threshold == "auto":
        thr = float(AUTO_FACTOR * np.median(best.max(axis=1)))
    else:
        thr = float(V.check_scalar(threshold, "dedup threshold", (int, float), min_val=0.0))
    return _components(idx, best < thr), thr


def _fourier_magnitude(x: np.ndarray) -> np.ndarray:
    """|FFT| of the ``FOURIER_KEEP`` lowest frequencies per axis, one row per image (shift-free)."""
    h, w = x.shape[-2:]
    keep_y, keep_x = min(FOURIER_KEEP, h // 2 + 1), min(FOURIER_KEEP, w // 2 + 1)
    rows = np.r_[0:keep_y, h - keep_y + 1:h]  # non-negative and negative frequencies along y
    mag = np.abs(np.fft.rfft2(x, axes=(-2, -1)))[:, :, rows, :keep_x]
    return np.ascontiguousarray(mag.reshape(x.shape[0], -1), dtype=np.float32)


def _aligned_rms(a: np.ndarray, x: np.ndarray, cand: np.ndarray, s: int) -> np.ndarray:
    """RMS difference of each ``a[i]`` and ``x[cand[i, j]]`` over the interior, at the best shift.

    No library offers a batched minimum over small shifts of many image pairs; a loop over the
    (2s+1)² shifts (not over samples) of one broadcast difference does it.
    """
    h, w = a.shape[-2:]
    b = x[cand]  # (m, k, c, h, w); the window at (dy, dx) is b moved by (dy - s, dx - s)
    ai = a[:, None, :, s:h - s, s:w - s]
    best = np.full(cand.shape, np.inf, dtype=np.float32)
    for dy in range(2 * s + 1):
        for dx in range(2 * s + 1):
            diff = ai - b[..., dy:dy + h - 2 * s, dx:dx + w - 2 * s]
            np.minimum(best, np.einsum("mkchw,mkchw->mk", diff, diff), out=best)
    return np.sqrt(best / max(1, a.shape[1] * (h - 2 * s) * (w - 2 * s)))


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
