"""Moderate-DS (Xia et al. 2023, "Moderate coreset: a universal method of data selection").

Score of a sample: the Euclidean distance of its features to its class's **median** feature
vector (coordinate-wise median, as in the authors' code). Selection keeps the samples whose
distance is moderate: sort a class by distance and keep the contiguous window of ``budget``
samples centred on the median rank, i.e. drop the easiest (closest) and the hardest (farthest)
in equal numbers.

Deviation: the authors' code applies the rank window to the whole dataset at once; here it is
applied per class so that the class budgets of :func:`topodata.select.class_budgets` hold
exactly. When ``n_c − budget`` is odd the extra dropped sample is a far one (the window starts at
``floor((n_c − budget) / 2)``). Equal distances keep index order. No randomness is involved.
"""

import time
from dataclasses import asdict, dataclass

import numpy as np

from . import MethodOutput

__all__ = ["ModerateConfig", "CONFIG", "moderate", "median_distances"]


@dataclass
class ModerateConfig:
    """Moderate-DS has no hyper-parameters beyond the budget."""


CONFIG = ModerateConfig


def median_distances(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Distance of each sample to the coordinate-wise median of its class.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)

    Returns
    -------
    ndarray of shape (n_samples,), float64

    Examples
    --------
    >>> import numpy as np
    >>> median_distances(np.array([[0.0], [1.0], [5.0]]), np.array([0, 0, 0])).tolist()
    [1.0, 0.0, 4.0]
    """
    dist = np.empty(labels.shape[0], dtype=np.float64)
    for c in np.unique(labels):  # one vectorised pass per class
        idx = np.flatnonzero(labels == c)
        med = np.median(features[idx], axis=0)
        dist[idx] = np.linalg.norm(features[idx] - med, axis=1)
    return dist


def moderate(features, labels, *, budgets, rng, dynamics=None, **params) -> MethodOutput:
    """Keep, per class, the ``budget`` samples around the median distance to the class median.

    Parameters
    ----------
    features, labels, budgets, rng, dynamics
        The method signature of :mod:`topodata.scores` (``rng`` and ``dynamics`` are unused).
    **params
        Fields of :class:`ModerateConfig` (none).

    Returns
    -------
    MethodOutput
        ``scores`` = distance to the class median (higher = more atypical); ``indices`` = the
        per-class rank windows.
    """
    cfg = ModerateConfig(**params)
    t0 = time.perf_counter()
    scores = median_distances(features, labels)
    kept = []
    for c, budget in budgets.items():
        idx = np.flatnonzero(labels == c)
        order = idx[np.argsort(scores[idx], kind="stable")]
        start = (idx.size - budget) // 2
        kept.append(order[start : start + budget])
    indices = np.sort(np.concatenate(kept)) if kept else np.empty(0, np.int64)
    return MethodOutput(
        scores=scores, indices=indices, params=asdict(cfg), timings_s={"select": time.perf_counter() - t0}
    )
