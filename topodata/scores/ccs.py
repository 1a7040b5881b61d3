"""Coverage-centric coreset selection (Zheng et al. 2023, "Coverage-centric coreset selection
for high pruning rates", CCS).

1. A difficulty score per sample (higher = harder): by default −AUM from the training dynamics
   (the paper's default is AUM; forgetting and EL2N are offered too). Without recorded dynamics
   the linear-head fallback :func:`topodata.nn.dynamics.dynamics_from_features` supplies them.
2. Hard cut-off: the hardest ``beta`` fraction of each class is dropped (likely mislabelled or
   ambiguous at high pruning rates).
3. The remaining scores are split into ``n_strata`` equal-width strata and the budget spread
   evenly over them, filling from the smallest stratum up.

Steps 2–3 are the framework's ``coverage`` strategy (:func:`topodata.select.select_from_scores`):
this module returns the difficulty score only, so ``beta``, ``n_strata`` and ``sampler`` of
``select`` apply to CCS as to every method. ``beta='auto'`` follows the authors' cut-offs
(``max(0, rate − 0.6)``: 0.2 at rate 0.8, 0.3 at 0.9; ``MethodSpec.auto_beta``).

Deviation: the paper stratifies the whole dataset at once; here it is done per class so the
class budgets hold exactly.
"""

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
    fallback_epochs: int = field(
        default=20,
        metadata={"help": "epochs of the linear-head fallback when no training dynamics are given"},
    )

    def __post_init__(self) -> None:
        V.check_options(self.score, "score", tuple(DIFFICULTY_SCORES))
        V.check_scalar(self.fallback_epochs, "fallback_epochs", (int, np.integer), min_val=1)


CONFIG = CCSConfig


def ccs(features, labels, *, budgets, rng, dynamics=None, **params) -> MethodOutput:
    """The CCS difficulty score; ``select`` applies the cut-off and the coverage strata.

    Parameters
    ----------
    features, labels, budgets, rng, dynamics
        The method signature of :mod:`topodata.scores`.
    **params
        Fields of :class:`CCSConfig`.

    Returns
    -------
    MethodOutput
        ``scores`` = the difficulty score (higher = harder); ``params`` says where the dynamics
        came from.
    """
    cfg = CCSConfig(**params)
    scores, info, t_score = difficulty_scores(
        features, labels, dynamics, score=cfg.score, rng=rng, fallback_epochs=cfg.fallback_epochs
    )
    return MethodOutput(scores=scores, params={**asdict(cfg), **info}, timings_s={"difficulty": t_score})
