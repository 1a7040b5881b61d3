"""Zero-dimensional persistence through spanning trees, batched, for numpy and torch.

All vertices of a Vietoris–Rips filtration (or of a network layer's graph) are born at the same
value, so the finite 0-dimensional pairs are exactly the edges of a minimum (or maximum) spanning
tree: one union-find over the edges sorted by filtration value (Kruskal) and Prim's algorithm pick
the same tree, hence the same diagram (docs/weights.md#persistence-core).

Why this is hand-written: scipy, networkx and friends compute one spanning tree of one graph per
call. TopoPrune needs the trees of ~60,000 neighbourhoods of 33 points at once, on the GPU when
there is one, with gradients flowing to the edge weights. No library offers a batched or a
differentiable spanning tree, so :func:`mst_dense` runs Prim's algorithm on dense weight matrices
as ``n - 1`` vectorised steps over the whole batch. The same code runs on numpy arrays and on torch
tensors through the tiny array-namespace shim ``ArrayNamespace``; it is the only spanning-tree
implementation of the project (:func:`spanning_tree_pairs` calls it on a dense matrix).
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from .. import _validation as V
from ._common import ArrayNamespace, as_weight_array, check_p_metric, check_points

__all__ = ["mst_dense", "h0_point_cloud", "spanning_tree_pairs", "H0Diagram"]


# ----------------------------------------------------------------------------- validation
def _check_weight_matrix(D: Any, *, check_symmetric: bool) -> Any:
    D = as_weight_array(D, "D")
    if D.ndim not in (2, 3):
        raise V.TopodataInputError(
            f"D must be a weight matrix of shape (n, n) or a batch of shape (B, n, n); got shape "
            f"{tuple(D.shape)}"
        )
    if D.shape[-1] != D.shape[-2]:
        raise V.TopodataInputError(
            f"D must be square in its last two axes; got shape {tuple(D.shape)}. Pass pairwise "
            "distances (e.g. scipy.spatial.distance.cdist(x, x)), not the points themselves"
        )
    if D.shape[-1] < 1:
        raise V.TopodataInputError(f"D must have at least one vertex; got shape {tuple(D.shape)}")
    xp = ArrayNamespace(D)
    if xp.isnan_any(D):
        raise V.TopodataInputError("D contains NaN; use +inf for 'no edge' and clean NaN weights first")
    if check_symmetric:
        Dd = xp.detach(D)
        T = Dd.transpose(-1, -2) if xp.torch else np.swapaxes(Dd, -1, -2)
        with np.errstate(invalid="ignore"):  # inf - inf; equal infinities pass via ``==``
            ok = (Dd == T) | (abs(Dd - T) <= 1e-5 * abs(Dd) + 1e-8)
        if not bool(ok.all()):
            raise V.TopodataInputError(
                "D must be symmetric (an undirected graph); got D != D.T. Symmetrise it, e.g. "
                "D = minimum(D, D.T)"
            )
    return D


# ----------------------------------------------------------------------------- the core
def _prim(D, xp: ArrayNamespace):
    """Prim's algorithm on a batch of dense matrices; returns tree edges in insertion order.

    ``D`` has shape (B, n, n), carries no gradient and is only read. Each of the ``n - 1`` steps
    works on all B graphs at once: pick the lightest edge leaving each tree, then relax the
    candidate edges with the row of the new vertex. Ties are broken deterministically: among
    equally light candidates the vertex with the smallest id wins, and a vertex keeps the parent
    that first offered its lightest edge.
    """
    B, n, _ = D.shape
    b = xp.arange(B)
    inf = float("inf")
    # ``best`` is +inf exactly on the tree. Missing edges (+inf in D) are read as the largest
    # finite float so that they stay selectable: a disconnected graph still gets n - 1 tree
    # edges, the bridging ones with weight +inf once gathered from D.
    has_inf = bool((D == inf).any())
    big = xp.finfo_max(D)
    in_tree = xp.zeros((B, n), "bool")
    in_tree[:, 0] = True
    best = xp.copy(D[:, 0, :])  # lightest known edge from the tree to each vertex
    if has_inf:
        best = xp.where(best == inf, big, best)
    best[:, 0] = inf
    parent = xp.zeros((B, n), "int64")  # tree end of that edge (stale on tree vertices: unused)
    tree_u, tree_v = [], []
    for _ in range(n - 1):
        j = xp.argmin(best, 1)
        tree_u.append(parent[b, j])
        tree_v.append(j)
        in_tree[b, j] = True
        row = D[b, j]
        if has_inf:
            row = xp.where(row == inf, big, row)
        parent = xp.where(row < best, j[:, None], parent)
        best = xp.where(in_tree, inf, xp.minimum(row, best))
    return xp.stack(tree_u, 1), xp.stack(tree_v, 1)


def _mst_batched(D, xp: ArrayNamespace):
    """Sorted spanning-tree edges and their weights for a (B, n, n) batch (no checks)."""
    B, n, _ = D.shape
    if n == 1:
        edges = xp.zeros((B, 0, 2), "int64")
        return edges, D[:, :0, 0]
    Dd = xp.detach(D)
    tu, tv = _prim(Dd, xp)
    b = xp.arange(B)[:, None]
    order = xp.stable_argsort(Dd[b, tu, tv], 1)
    tu, tv = xp.take_along(tu, order, 1), xp.take_along(tv, order, 1)
    weights = D[b, tu, tv]  # gathered from the caller's D so that autograd reaches it
    edges = xp.stack([xp.minimum(tu, tv), xp.maximum(tu, tv)], 2)
    return edges, weights


def mst_dense(D: Any, *, return_weights: bool = True, check_symmetric: bool = True):
    """Minimum spanning trees of one or many dense weight matrices, vectorised over the batch.

    Parameters
    ----------
    D : ndarray or torch.Tensor of shape (n, n) or (B, n, n)
        Symmetric edge weights; ``+inf`` means "no edge". The diagonal is ignored. Any real
        weights work (negate them for a maximum spanning tree).
    return_weights : bool, default=True
        Also return the tree's edge weights.
    check_symmetric : bool, default=True
        Check ``D == D.T`` up to a relative 1e-5. Internal callers that build a symmetric ``D``
        skip it to save one pass over memory.

    Returns
    -------
    edges : ndarray or torch.Tensor of int64, shape (..., n - 1, 2)
        Tree edges as vertex ids, smaller id first, sorted by ascending weight (stable, ties in
        the order Prim's algorithm added them).
    weights : ndarray or torch.Tensor of shape (..., n - 1)
        ``D[edge]`` ascending per graph; gathered from ``D`` so torch autograd flows to ``D``.
        For a disconnected graph the spanning *forest* is completed with ``+inf`` edges, one per
        missing connection (its two vertex ids are arbitrary but deterministic), so the number of
        finite weights is ``n - n_components``.

    numpy in gives numpy out; a torch tensor gives tensors on the same device.

    Raises
    ------
    TopodataInputError
        If ``D`` is not (B, n, n)/(n, n), is not square, holds NaN or is not symmetric.

    Examples
    --------
    >>> import numpy as np
    >>> D = np.array([[0, 1, 4], [1, 0, 2], [4, 2, 0]], dtype=float)
    >>> edges, weights = mst_dense(D)
    >>> edges.tolist(), weights.tolist()
    ([[0, 1], [1, 2]], [1.0, 2.0])
    """
    D = _check_weight_matrix(D, check_symmetric=check_symmetric)
    xp = ArrayNamespace(D)
    single = D.ndim == 2
    edges, weights = _mst_batched(D[None] if single else D, xp)
    if single:
        edges, weights = edges[0], weights[0]
    return (edges, weights) if return_weights else edges


# ----------------------------------------------------------------------------- point clouds
class H0Diagram(NamedTuple):
    """H0 of Vietoris–Rips filtrations: every finite class is born at 0 and dies at ``deaths``.

    deaths : shape (..., n - 1), ascending; the one infinite class is not listed.
    edges : int64, shape (..., n - 1, 2); the critical (spanning-tree) edge killing each class.
    """

    deaths: Any
    edges: Any


def _distance_key(x, p_metric: float, xp: ArrayNamespace):
    """A (B, n, n) matrix *monotone in* the Minkowski distance, built exactly (no matmul trick).

    ``sum |x_i - x_j|^p`` orders edges exactly as the distance does, so Prim's algorithm needs no
    root. The differences are formed explicitly, one coordinate at a time (a loop over the
    dimensions, not the samples), because the ``|a|^2 + |b|^2 - 2ab`` shortcut loses the digits
    that decide near-ties against ripser.
    """
    B, n, d = x.shape
    cols = xp.coordinate_slabs(xp.detach(x))
    key = xp.zeros_float((B, n, n), x)
    diff = xp.copy(key)
    for c in cols:
        xp.subtract(c[:, :, None], c[:, None, :], out=diff)
        if p_metric == np.inf:
            key = xp.maximum(key, abs(diff))
        elif p_metric == 2:
            diff *= diff
            key += diff
        elif p_metric == 1:
            key += abs(diff)
        else:
            key += abs(diff) ** p_metric
    return key


def _h0_chunk(x, p_metric: float, xp: ArrayNamespace):
    key = _distance_key(x, p_metric, xp)
    edges, _ = _mst_batched(key, xp)
    B = x.shape[0]
    b = xp.arange(B)[:, None]
    # Deaths are recomputed from the points on the critical edges: exact lengths, and the only
    # place autograd needs to go through (a few edges instead of the full distance matrix).
    deaths = xp.norm(x[b, edges[..., 0]] - x[b, edges[..., 1]], p_metric, -1)
    order = xp.stable_argsort(xp.detach(deaths), 1)  # rounding can swap exact near-ties
    deaths = xp.take_along(deaths, order, 1)
    edges = xp.stack([xp.take_along(edges[..., i], order, 1) for i in (0, 1)], 2)
    return deaths, edges


def h0_point_cloud(points: Any, *, p_metric: float = 2, batch_size: int | None = 1024) -> H0Diagram:
    """H0 persistence diagrams and critical edges of one or many Vietoris–Rips filtrations.

    Parameters
    ----------
    points : ndarray or torch.Tensor of shape (n, d) or (B, n, d)
        One cloud or a batch of clouds with the same number of points.
    p_metric : float, default=2
        Minkowski exponent of the distance (2 = Euclidean, as ripser's default; ``inf`` allowed).
    batch_size : int or None, default=1024
        Clouds processed per chunk; bounds the (chunk, n, n) distance matrix in memory (60,000
        clouds of 33 points at once would need ~260 MB in float32). ``None`` = all at once.
        1024 was fastest on a CPU (``scripts/bench_persistence.py``); on a GPU larger chunks
        (or ``None``) cut the number of kernel launches.

    Returns
    -------
    H0Diagram
        ``deaths`` of shape (..., n - 1) ascending (births are all 0; the infinite class is left
        out) and ``edges`` int64 of shape (..., n - 1, 2). numpy in gives numpy out; torch in
        gives tensors on the input's device, and ``deaths`` is differentiable w.r.t. ``points``
        (exactly so between changes of the tree).

    Examples
    --------
    >>> import numpy as np
    >>> h0 = h0_point_cloud(np.array([[0.0], [1.0], [3.0]]))
    >>> h0.deaths.tolist(), h0.edges.tolist()
    ([1.0, 2.0], [[0, 1], [1, 2]])
    """
    x = check_points(points)
    p_metric = check_p_metric(p_metric)
    if batch_size is not None:
        V.check_scalar(batch_size, "batch_size", numbers.Integral, min_val=1)
    xp = ArrayNamespace(x)
    single = x.ndim == 2
    if single:
        x = x[None]
    B = x.shape[0]
    step = max(B, 1) if batch_size is None else int(batch_size)
    parts = [_h0_chunk(x[s : s + step], p_metric, xp) for s in range(0, max(B, 1), step)]
    deaths, edges = (xp.concat([part[i] for part in parts]) for i in (0, 1))
    if single:
        deaths, edges = deaths[0], edges[0]
    return H0Diagram(deaths, edges)


# ----------------------------------------------------------------------------- edge-list graphs
def spanning_tree_pairs(
    u: Any, v: Any, w: Any, n_vertices: int, *, maximum: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """H0 persistence pairs of a weighted graph given as an edge list.

    Parameters
    ----------
    u, v : array-like of int of shape (n_edges,)
        End points of each edge, vertex ids in ``[0, n_vertices)``. Self-loops are ignored; of
        parallel edges the one that enters the filtration first is used.
    w : array-like of float of shape (n_edges,)
        Finite edge weights.
    n_vertices : int
        Number of vertices (isolated vertices allowed; they never die).
    maximum : bool, default=False
        ``False``: sublevel filtration, every vertex born at 0, each minimum-spanning-tree edge
        gives the pair ``(0, w_e)``. ``True``: superlevel filtration of neural persistence (Rieck
        et al. 2019), for weights already normalised to ``|w| / max|w|``: every vertex is born at
        1 and each maximum-spanning-tree edge gives the pair ``(1, w_e)``.

    Returns
    -------
    pairs : ndarray of shape (n_pairs, 2), float64
        ``n_pairs = n_vertices - n_components``, in filtration order (ascending ``w`` for
        ``maximum=False``, descending otherwise).
    edge_ids : ndarray of shape (n_pairs,), int64
        Position in the input edge list of the edge that created each pair.

    Examples
    --------
    >>> pairs, ids = spanning_tree_pairs([0, 0, 1], [1, 2, 2], [0.9, 0.2, 0.5], 3, maximum=True)
    >>> pairs.tolist(), ids.tolist()
    ([[1.0, 0.9], [1.0, 0.5]], [0, 2])
    """
    V.check_scalar(n_vertices, "n_vertices", numbers.Integral, min_val=1)
    n = int(n_vertices)
    u = np.asarray(u)
    v = np.asarray(v)
    w = np.asarray(w, dtype=np.float64)
    if not (u.ndim == v.ndim == w.ndim == 1 and u.shape == v.shape == w.shape):
        raise V.TopodataInputError(
            f"u, v and w must be 1-D of the same length; got shapes {u.shape}, {v.shape}, {w.shape}"
        )
    if u.size and (u.dtype.kind not in "iu" or v.dtype.kind not in "iu"):
        raise TypeError(f"u and v must be integer vertex ids; got dtypes {u.dtype}, {v.dtype}")
    if u.size and (min(u.min(), v.min()) < 0 or max(u.max(), v.max()) >= n):
        raise V.TopodataInputError(
            f"vertex ids must lie in [0, n_vertices={n}); got range "
            f"[{min(u.min(), v.min())}, {max(u.max(), v.max())}]"
        )
    if not np.isfinite(w).all():
        raise V.TopodataInputError("w contains NaN or inf; edge weights must be finite")
    ids = np.flatnonzero(u != v)  # self-loops never merge anything
    lo = np.minimum(u[ids], v[ids])
    hi = np.maximum(u[ids], v[ids])
    key = -w[ids] if maximum else w[ids]  # negation is exact: same tree, no rounding
    edge_at = np.full((n, n), -1, dtype=np.int32 if ids.size < 2**31 else np.int64)
    edge_at[lo, hi] = np.arange(ids.size)
    if not np.array_equal(edge_at[lo, hi], np.arange(ids.size)):
        # Parallel edges: keep the one entering the filtration first (lowest id among equals).
        order = np.argsort(key, kind="stable")
        _, first = np.unique(lo[order].astype(np.int64) * n + hi[order], return_index=True)
        keep = np.sort(order[first])
        ids, lo, hi, key = ids[keep], lo[keep], hi[keep], key[keep]
        edge_at[lo, hi] = np.arange(ids.size)
    # Non-edges get the largest finite float rather than +inf: Prim's algorithm then needs no
    # per-step substitution, and a tree edge that is no graph edge is recognised by edge_at < 0.
    M = np.full((n, n), np.finfo(np.float64).max)
    M[lo, hi] = key
    M[hi, lo] = key
    edges, _ = _mst_batched(M[None], ArrayNamespace(M))  # M is symmetric and finite by construction
    at = edge_at[edges[0, :, 0], edges[0, :, 1]]
    edge_ids = ids[at[at >= 0]]
    pairs = np.empty((edge_ids.size, 2))
    pairs[:, 0] = 1.0 if maximum else 0.0
    pairs[:, 1] = w[edge_ids]
    return pairs, edge_ids
