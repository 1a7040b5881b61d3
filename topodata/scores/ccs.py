"""Coverage-centric coreset selection (Zheng et al. 2023, "Coverage-centric coreset selection
for high pruning rates", CCS).

1. A difficulty score per sample (higher = harder): by default −AUM from the training dynamics
   (the paper's default is AUM; forgetting and EL2N are offered too). Without recorded dynamics
   the linear-head fallback :func:`topodata.train.dynamics.dynamics_from_features` supplies them.
2. Hard cut-off: drop the hardest ``beta`` fraction of each class (likely mislabelled or
   ambiguous at high pruning rates).
3. Split the remaining scores into ``n_strata`` equal-width strata and spread the budget evenly
   over them, filling from the smallest stratum up, with a seeded draw inside each stratum.

Steps 2–3 are :func:`topodata.select.select_from_scores` with ``strategy='coverage'``.

Deviations: the paper stratifies the whole dataset at once; here it is done per class so the
class budgets hold exactly. ``beta < 0`` (the default) picks the cut-off from the pruning rate
with :func:`topodata.select.auto_beta` (0 up to rate 0.5, 0.1 at rate 0.9), since the paper
tunes β per dataset and rate.
"""

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import _validation as V
from . import MethodOutput
from .dynamics import DIFFICULTY_SCORES, difficulty_scores

__all__ = ["CCSConfig", "CONFIG", "ccs"]


@dataclass
class CCSConfig:
    """Hyper-parameters of ``ccs``."""

    score: str = field(
        default="aum", metadata={"help": "difficulty score: aum (paper default), forgetting or el2n"}
    )
    beta: float = field(
        default=-1.0,
        metadata={"help": "hardest fraction dropped per class before stratifying; <0: auto from the rate"},
    )
    n_strata: int = field(default=50, metadata={"help": "number of equal-width score strata"})
    fallback_epochs: int = field(
        default=20,
        metadata={"help": "epochs of the linear-head fallback when no training dynamics are given"},
    )

    def __post_init__(self) -> None:
        V.check_options(self.score, "score", tuple(DIFFICULTY_SCORES))
        V.check_scalar(self.beta, "beta", (int, float), max_val=1.0, include_max=False)
        V.check_scalar(self.n_strata, "n_strata", (int, np.integer), min_val=1)
        V.check_scalar(self.fallback_epochs, "fallback_epochs", (int, np.integer), min_val=1)


CONFIG = CCSConfig


def ccs(features, labels, *, budgets, rng, dynamics=None, **params) -> MethodOutput:
    """Difficulty score, hard cut-off, then stratified coverage sampling, per class.

    Parameters
    ----------
    features, labels, budgets, rng, dynamics
        The method signature of :mod:`topodata.scores`.
    **params
        Fields of :class:`CCSConfig`.

    Returns
    -------
    MethodOutput
        ``scores`` = the difficulty score; ``indices`` = the coverage sample. ``params`` holds the
        ``beta`` actually used (``beta_from`` says whether it was given or derived from the rate)
        and where the dynamics came from.
    """
    from ..select import auto_beta, select_from_scores
    from . import METHODS

    cfg = CCSConfig(**params)
    scores, info, t_score = difficulty_scores(
        features, labels, dynamics, score=cfg.score, rng=rng, fallback_epochs=cfg.fallback_epochs
    )
    n = labels.shape[0]
    if cfg.beta < 0:
        rate = 1.0 - sum(budgets.values()) / n
        beta, beta_from = auto_beta(rate, *METHODS["ccs"].auto_beta), "auto_beta(rate)"
    else:
        beta, beta_from = float(cfg.beta), "given"
    t0 = time.perf_counter()
    indices = select_from_scores(
        scores, labels, budgets, strategy="coverage", beta=beta, n_strata=cfg.n_strata, rng=rng
    )
    return MethodOutput(
        scores=scores,
        indices=indices,
        params={**asdict(cfg), "beta": beta, "beta_from": beta_from, **info},
        timings_s={"difficulty": t_score, "select": time.perf_counter() - t0},
    )
