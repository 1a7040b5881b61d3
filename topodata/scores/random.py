"""Class-stratified uniform random selection: the baseline every table includes."""

from __future__ import annotations

import numpy as np

from . import MethodOutput

__all__ = ["random_scores"]


def random_scores(features, labels, *, budgets, rng, dynamics=None) -> MethodOutput:
    """Draw each class's budget uniformly without replacement (seeded by ``rng``).

    Has no per-sample score, so ``scores`` is all NaN (docs/design.md#topodata-select).
    """
    kept = [
        rng.choice(np.flatnonzero(labels == c), size=b, replace=False)
        for c, b in budgets.items()
        if b > 0
    ]
    idx = np.sort(np.concatenate(kept)) if kept else np.empty(0, np.int64)
    return MethodOutput(scores=np.full(labels.shape[0], np.nan), indices=idx)
