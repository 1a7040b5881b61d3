"""Differentiable persistence losses: total persistence as a torch function of the points.

Every finite diagram point of a Rips filtration is ``(|z_a - z_b|, |z_c - z_d|)`` for its critical
edges (docs/algorithms.md#topoprune-step-by-step). With the edges fixed, the loss is a smooth function of a few distances, so
autograd gives the exact gradient with respect to the points wherever the combinatorics (which
edges are critical) does not change, the standard construction of topological losses.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import _validation as V
from .rips_h1 import H1Diagram
from ._common import check_p_metric, check_points, is_torch
from .spanning_tree import h0_point_cloud

# torch is imported on use: importing topodata.topology stays numpy-only.

__all__ = ["h0_total_persistence", "h1_total_persistence"]

REDUCTIONS = ("sum", "mean", "none")


def _as_tensor_points(points: Any):
    import torch

    x = check_points(points)
    if not is_torch(x):
        x = torch.from_numpy(np.asarray(x, dtype=np.float64))
    return x


def _reduce(per_cloud, reduction: str, single: bool):
    if reduction == "sum":
        return per_cloud.sum()
    if reduction == "mean":
        return per_cloud.mean()
    return per_cloud[0] if single else per_cloud


def h0_total_persistence(
    points: Any,
    *,
    p: float = 2,
    reduction: str = "sum",
    p_metric: float = 2,
    batch_size: int | None = 1024,
):
    """Sum of ``death^p`` over the finite H0 pairs of one or many Rips filtrations.

    Parameters
    ----------
    points : torch.Tensor (or ndarray) of shape (n, d) or (B, n, d)
        ndarrays become float64 tensors (no gradient to return to them).
    p : float, default=2
        Exponent of each lifetime (births are 0, so a lifetime is its death).
    reduction : {'sum', 'mean', 'none'}, default='sum'
        Over clouds: ``'none'`` returns one value per cloud, shape (B,) (a 0-d tensor for one cloud).
    p_metric : float, default=2
        Minkowski exponent of the point distance.
    batch_size : int or None, default=1024
        Passed to :func:`h0_point_cloud` to bound memory.

    Returns
    -------
    torch.Tensor
        Differentiable w.r.t. ``points``.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[0.0, 0.0], [3.0, 0.0], [3.0, 4.0]], requires_grad=True)
    >>> loss = h0_total_persistence(x)  # 3^2 + 4^2
    >>> loss.backward()
    >>> loss.item(), x.grad[0].tolist()
    (25.0, [-6.0, 0.0])
    """
    x = _as_tensor_points(points)
    p = V.check_exponent(p, min_val=0, include_min=False, allow_inf=False)
    V.check_options(reduction, "reduction", REDUCTIONS)
    deaths = h0_point_cloud(x, p_metric=p_metric, batch_size=batch_size).deaths
    single = x.ndim == 2
    per_cloud = (deaths**p).sum(-1).reshape(-1)
    return _reduce(per_cloud, reduction, single)


def _edge_array(edges: Any, n_points: int, name: str) -> np.ndarray:
    if isinstance(edges, H1Diagram):
        edges = edges.edges
    if is_torch(edges):
        edges = edges.detach().cpu().numpy()
    e = np.asarray(edges)
    if e.size == 0:
        return np.zeros((0, 4), dtype=np.int64)
    if e.ndim != 2 or e.shape[1] != 4 or e.dtype.kind not in "iu":
        raise V.TopodataInputError(
            f"{name} must be integer critical edges of shape (n_pairs, 4) = (birth_a, birth_b, "
            f"death_a, death_b), e.g. H1Diagram.edges; got shape {e.shape}, dtype {e.dtype}"
        )
    if e.min() < 0 or e.max() >= n_points:
        raise V.TopodataInputError(
            f"{name} holds vertex ids outside [0, {n_points}); got range [{e.min()}, {e.max()}]"
        )
    return e.astype(np.int64)


def h1_total_persistence(
    points: Any,
    edges: Any,
    *,
    p: float = 2,
    reduction: str = "sum",
    p_metric: float = 2,
):
    """Sum of ``|death - birth|^p`` over H1 pairs given by their critical edges.

    Parameters
    ----------
    points : torch.Tensor (or ndarray) of shape (n, d) or (B, n, d)
    edges : array-like of shape (m, 4), H1Diagram, or a sequence of B of them for (B, n, d)
        ``(birth_a, birth_b, death_a, death_b)`` per pair, as :attr:`H1Diagram.edges` gives
        (from :func:`h1_point_cloud` / :func:`h1_point_cloud_batch` on the same points).
    p : float, default=2
    reduction : {'sum', 'mean', 'none'}, default='sum'
        Over clouds; ``'none'`` gives shape (B,) (0-d for one cloud).
    p_metric : float, default=2

    Returns
    -------
    torch.Tensor
        Differentiable w.r.t. ``points``; 0 for clouds without H1 pairs.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    >>> round(float(h1_total_persistence(x, [[0, 1, 0, 2]], p=1)), 6)  # sqrt(2) - 1
    0.414214
    """
    import torch

    x = _as_tensor_points(points)
    p = V.check_exponent(p, min_val=0, include_min=False, allow_inf=False)
    p_metric = check_p_metric(p_metric)
    V.check_options(reduction, "reduction", REDUCTIONS)
    single = x.ndim == 2
    if single:
        x = x[None]
        per = [_edge_array(edges, x.shape[1], "edges")]
    else:
        if isinstance(edges, H1Diagram) or not isinstance(edges, Sequence) or len(edges) != x.shape[0]:
            got = len(edges) if isinstance(edges, Sequence) else type(edges).__name__
            raise V.TopodataInputError(
                f"for points of shape {tuple(x.shape)} edges must be a sequence of {x.shape[0]} "
                f"per-cloud (m_i, 4) arrays; got {got}"
            )
        per = [_edge_array(e, x.shape[1], f"edges[{i}]") for i, e in enumerate(edges)]
    counts = np.array([len(e) for e in per])
    cloud = torch.from_numpy(np.repeat(np.arange(len(per)), counts)).to(x.device)
    e = torch.from_numpy(np.concatenate(per)).to(x.device)

    def length(a, b):
        return torch.linalg.vector_norm(x[cloud, a] - x[cloud, b], ord=p_metric, dim=-1)

    life = (length(e[:, 2], e[:, 3]) - length(e[:, 0], e[:, 1])).abs() ** p
    per_cloud = x.new_zeros(x.shape[0]).index_add(0, cloud, life)
    return _reduce(per_cloud, reduction, single)
