"""k-center greedy (Sener & Savarese 2018, "Active learning for CNNs: a core-set approach").

Per class, starting from one centre drawn with ``rng``, repeatedly add the sample farthest from
its nearest centre (the greedy 2-approximation of the minimax facility-location problem), as
DeepCore's ``kCenterGreedy`` does with a random start and no pre-selected set.

Each step computes one row of squared distances from the new centre to the class with
``‖x‖² − 2 x·c + ‖c‖²`` (one matrix-vector product) and folds it into the running minimum, so
memory stays at O(n_c) beyond the features: no n_c × n_c matrix. The loop over picks is
inherent to the greedy algorithm (each pick depends on the previous ones).

Per-sample score: the distance from the sample to the nearest centre picked *before* it (for
samples never picked, to the nearest centre of the final set); higher = farther from what the
set already covers = more atypical. The random start has no earlier centre: its score is NaN.
"""

import time
from dataclasses import asdict, dataclass

import numpy as np

from . import MethodOutput

__all__ = ["KCenterConfig", "CONFIG", "kcenter", "kcenter_greedy"]


@dataclass
class KCenterConfig:
    """k-center greedy has no hyper-parameters beyond the budget; ``rng`` draws the start."""


CONFIG = KCenterConfig


def kcenter_greedy(x: np.ndarray, budget: int, *, start: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center on the rows of ``x``.

    Parameters
    ----------
    x : ndarray of shape (n, d)
    budget : int
        Number of centres, at most ``n``.
    start : int
        Row of the first centre.

    Returns
    -------
    picked : ndarray of shape (budget,), int64
        Rows in the order they were picked.
    score : ndarray of shape (n,), float64
        Distance to the nearest centre picked before the row (NaN for ``start``).

    Examples
    --------
    >>> import numpy as np
    >>> picked, score = kcenter_greedy(np.array([[0.0], [1.0], [10.0], [4.0]]), 3, start=0)
    >>> picked.tolist(), score.tolist()
    ([0, 2, 3], [nan, 1.0, 10.0, 4.0])
    """
    n = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)
    min_d2 = np.full(n, np.inf)
    score = np.full(n, np.nan)
    picked = np.empty(budget, dtype=np.int64)
    cur = int(start)
    for t in range(budget):
        picked[t] = cur
        if t:
            score[cur] = np.sqrt(min_d2[cur])
        d2 = sq - 2.0 * (x @ x[cur]) + sq[cur]
        np.minimum(min_d2, np.maximum(d2, 0.0), out=min_d2)
        min_d2[cur] = -np.inf  # never picked again, even among duplicates at distance 0
        cur = int(np.argmax(min_d2))
    rest = np.isfinite(min_d2)
    score[rest] = np.sqrt(min_d2[rest])
    return picked, score


def kcenter(features, labels, *, budgets, rng, dynamics=None, **params) -> MethodOutput:
    """k-center greedy per class with a seeded random start.

    Parameters
    ----------
    features, labels, budgets, rng, dynamics
        The method signature of :mod:`topodata.scores` (``dynamics`` is unused).
    **params
        Fields of :class:`KCenterConfig` (none).

    Returns
    -------
    MethodOutput
        ``indices`` = the centres; ``scores`` = distance to the earlier centres (see module).
    """
    cfg = KCenterConfig(**params)
    t0 = time.perf_counter()
    scores = np.full(labels.shape[0], np.nan)
    kept = []
    for c, budget in budgets.items():
        idx = np.flatnonzero(labels == c)
        if budget == 0:
            continue
        picked, score = kcenter_greedy(features[idx], budget, start=int(rng.integers(idx.size)))
        scores[idx] = score
        kept.append(idx[picked])
    indices = np.sort(np.concatenate(kept)) if kept else np.empty(0, np.int64)
    return MethodOutput(
        scores=scores, indices=indices, params=asdict(cfg), timings_s={"select": time.perf_counter() - t0}
    )
