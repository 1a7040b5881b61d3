"""Scalar summaries of persistence diagrams, vectorised over a batch of diagrams.

They are the cheap ablations of the TopoPrune score (docs/algorithms.md#diagram-summaries): one number per
neighbourhood instead of a gradient flow.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import _validation as V
from .rips_h1 import H1Diagram
from ._common import is_torch

__all__ = ["diagram_summaries"]


def _entropy(total: np.ndarray, sum_l_log_l: np.ndarray) -> np.ndarray:
    """Persistence entropy ``-sum q log q`` with ``q = l / L``, as ``log L - sum(l log l) / L``.

    The closed form lets a bincount over ragged diagrams do the work; an empty or all-zero
    diagram has entropy 0.
    """
    out = np.zeros_like(total)
    ok = total > 0
    out[ok] = np.log(total[ok]) - sum_l_log_l[ok] / total[ok]
    return np.maximum(out, 0.0)  # clip -1e-16 rounding


def _l_log_l(lengths: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(lengths > 0, lengths * np.log(lengths), 0.0)


def diagram_summaries(
    deaths_h0: Any, h1_pairs_list: Sequence[Any] | Any | None = None, *, p: float = 1
) -> dict[str, np.ndarray]:
    """Total persistence, persistence entropy and H1 counts of many diagrams at once.

    Parameters
    ----------
    deaths_h0 : array-like or torch.Tensor of shape (n_pairs,) or (B, n_pairs)
        Finite H0 deaths (births 0), e.g. ``h0_point_cloud(points).deaths``.
    h1_pairs_list : sequence of B arrays of shape (m_i, 2) or H1Diagram, optional
        The H1 diagrams of the same clouds; a single (m, 2) array / H1Diagram when
        ``deaths_h0`` is 1-D.
    p : float, default=1
        Exponent of the total persistence ``sum |d - b|^p``. Entropy always uses plain lifetimes.

    Returns
    -------
    dict of str to ndarray of shape (B,) (0-d for one diagram), float64
        ``total_persistence_h0``, ``persistence_entropy_h0``; with H1 also ``n_pairs_h1``
        (int64), ``total_persistence_h1`` and ``persistence_entropy_h1``.

    Examples
    --------
    >>> s = diagram_summaries([[1.0, 1.0], [1.0, 3.0]])
    >>> s["total_persistence_h0"].tolist(), s["persistence_entropy_h0"].round(4).tolist()
    ([2.0, 4.0], [0.6931, 0.5623])
    """
    p = V.check_exponent(p, min_val=0, include_min=False, allow_inf=False)
    if is_torch(deaths_h0):
        deaths_h0 = deaths_h0.detach().cpu().numpy()
    d = np.asarray(deaths_h0, dtype=np.float64)
    if d.ndim not in (1, 2):
        raise V.TopodataInputError(
            f"deaths_h0 must have shape (n_pairs,) or (n_diagrams, n_pairs); got shape {d.shape}"
        )
    if d.size and (not np.isfinite(d).all() or d.min() < 0):
        raise V.TopodataInputError(
            "deaths_h0 must be finite and non-negative (drop the +inf edges of disconnected graphs)"
        )
    single = d.ndim == 1
    d2 = d[None] if single else d
    total0 = d2.sum(axis=1)
    out = {
        "total_persistence_h0": (d2**p).sum(axis=1),
        "persistence_entropy_h0": _entropy(total0, _l_log_l(d2).sum(axis=1)),
    }
    if h1_pairs_list is not None:
        if single:
            h1_pairs_list = [h1_pairs_list]
        if not isinstance(h1_pairs_list, Sequence) or len(h1_pairs_list) != d2.shape[0]:
            got = len(h1_pairs_list) if isinstance(h1_pairs_list, Sequence) else type(h1_pairs_list).__name__
            raise V.TopodataInputError(
                f"h1_pairs_list must hold one (m_i, 2) diagram per H0 diagram ({d2.shape[0]}); got {got}"
            )
        pairs = []
        for i, dg in enumerate(h1_pairs_list):
            a = np.asarray(dg.pairs if isinstance(dg, H1Diagram) else dg, dtype=np.float64)
            a = a.reshape(0, 2) if a.size == 0 else a
            if a.ndim != 2 or a.shape[1] != 2:
                raise V.TopodataInputError(
                    f"h1_pairs_list[{i}] must have shape (m, 2) of (birth, death); got shape {a.shape}"
                )
            pairs.append(a)
        counts = np.array([len(a) for a in pairs], dtype=np.int64)
        allp = np.concatenate(pairs) if pairs else np.zeros((0, 2))
        life = np.abs(allp[:, 1] - allp[:, 0])
        if not np.isfinite(life).all():
            raise V.TopodataInputError("h1_pairs_list holds infinite pairs; keep the finite ones")
        ids = np.repeat(np.arange(len(pairs)), counts)
        B = len(pairs)
        total1 = np.bincount(ids, life, minlength=B)
        out["n_pairs_h1"] = counts
        out["total_persistence_h1"] = np.bincount(ids, life**p, minlength=B)
        out["persistence_entropy_h1"] = _entropy(total1, np.bincount(ids, _l_log_l(life), minlength=B))
    if single:
        out = {k: v[0] for k, v in out.items()}
    return out
