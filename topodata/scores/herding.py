"""Herding (Welling 2009, "Herding dynamical weights to learn"; used for coresets in iCaRL and
DeepCore).

Per class, greedily add the sample that brings the running mean of the picked features closest
to the class mean: at step t (t samples picked, feature sum S) pick
``argmin_x ‖(t + 1)·μ − S − x‖`` over the samples not yet picked. Deterministic: ``rng`` is not
used, ties go to the lowest index.

Deviation: DeepCore's implementation takes the *argmax* of that distance; the argmin is what
makes the running mean track μ (Welling's herding, iCaRL's exemplar selection), so it is used
here.

Each step is one matrix-vector product over the class (features centred on μ, so the objective
is ``‖x‖² + 2 x·S``); the loop over picks is inherent to the greedy algorithm.

Per-sample score: the distance to the class mean (the quantity herding tracks); higher = more
atypical.
"""

import time
from dataclasses import asdict, dataclass

import numpy as np

from . import MethodOutput

__all__ = ["HerdingConfig", "CONFIG", "herding", "herding_order"]


@dataclass
class HerdingConfig:
    """Herding has no hyper-parameters beyond the budget."""


CONFIG = HerdingConfig


def herding_order(x: np.ndarray, budget: int) -> np.ndarray:
    """Rows of ``x`` in herding order, the first ``budget`` of them.

    Examples
    --------
    >>> import numpy as np
    >>> herding_order(np.array([[0.0], [1.0], [2.0], [5.0]]), 3).tolist()  # mean 2
    [2, 1, 3]
    """
    xc = x - x.mean(axis=0)
    sq = np.einsum("ij,ij->i", xc, xc)
    xs = np.zeros(x.shape[0])  # x_i · S for the current sum S of picked (centred) features
    open_ = np.zeros(x.shape[0])  # 0 while available, +inf once picked
    picked = np.empty(budget, dtype=np.int64)
    for t in range(budget):
        # ‖−S − x‖² = ‖x‖² + 2 x·S + ‖S‖²; the last term is the same for every candidate
        p = int(np.argmin(sq + 2.0 * xs + open_))
        picked[t] = p
        open_[p] = np.inf
        xs += xc @ xc[p]
    return picked


def herding(features, labels, *, budgets, rng, dynamics=None, **params) -> MethodOutput:
    """Herding towards the class mean, per class.

    Parameters
    ----------
    features, labels, budgets, rng, dynamics
        The method signature of :mod:`topodata.scores` (``rng``, ``dynamics`` unused).
    **params
        Fields of :class:`HerdingConfig` (none).

    Returns
    -------
    MethodOutput
        ``indices`` = the first ``budget`` herding picks per class; ``scores`` = distance to the
        class mean.
    """
    cfg = HerdingConfig(**params)
    t0 = time.perf_counter()
    scores = np.empty(labels.shape[0])
    kept = []
    for c, budget in budgets.items():
        idx = np.flatnonzero(labels == c)
        xc = features[idx]
        scores[idx] = np.linalg.norm(xc - xc.mean(axis=0), axis=1)
        kept.append(idx[herding_order(xc, budget)])
    indices = np.sort(np.concatenate(kept)) if kept else np.empty(0, np.int64)
    return MethodOutput(
        scores=scores, indices=indices, params=asdict(cfg), timings_s={"select": time.perf_counter() - t0}
    )
