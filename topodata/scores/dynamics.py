"""Difficulty scores from training dynamics: EL2N, forgetting and AUM.

All three read a :class:`topodata.nn.dynamics.TrainingDynamics` record of shape
``(n_epochs, n_samples)``; when ``dynamics`` is None they train the documented linear-head
fallback :func:`topodata.nn.dynamics.dynamics_from_features` on the features (seeded from
``rng``) and say so in ``params["dynamics"]``. Each returns scores only (higher = harder); the
framework's strategy picks the subset (registered default ``hard``).

What was followed, and deviations
---------------------------------
- **EL2N** (Paul et al. 2021, "Deep learning on a data diet"): ``‖softmax(f(x)) − onehot(y)‖₂``.
  The paper evaluates it early in training (epoch 20 of 200 on CIFAR-10) and averages over 10
  independent runs; here it is averaged over the records of the **first ``epochs`` epochs of
  one run** (rows ``0 .. epochs−1``, all rows if the run is shorter), which plays the role of
  the average over runs and keeps the "early in training" reading.
- **Forgetting** (Toneva et al. 2019): number of transitions correct → incorrect between
  consecutive *presentations* of the sample (epochs where it was not seen are skipped).
  Samples never classified correctly count as "unforgettable's opposite": they get the largest
  count in the data plus one, Toneva's stand-in for an infinite count. Scores are integers, so
  a ``hard`` selection meets ties, which the framework breaks by index.
- **AUM** (Pleiss et al. 2020): mean over all recorded epochs of (assigned logit − largest other
  logit). Low AUM means hard or mislabelled, so the score is **−AUM**. The threshold-sample
  procedure for flagging mislabels is not part of the score.

:func:`difficulty_scores` exposes the three to the methods that build on a difficulty score
(CCS, D2).
"""

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from .. import _validation as V
from . import MethodOutput

__all__ = [
    "EL2NConfig",
    "ForgettingConfig",
    "AUMConfig",
    "CONFIGS",
    "el2n",
    "forgetting",
    "aum",
    "el2n_scores",
    "forgetting_scores",
    "aum_scores",
    "difficulty_scores",
    "DIFFICULTY_SCORES",
]

_FALLBACK_HELP = (
    "epochs of the linear softmax head trained on the features when no training dynamics are "
    "given (topodata.nn.dynamics.dynamics_from_features)"
)


def _check_fallback_epochs(value: int) -> None:
    V.check_scalar(value, "fallback_epochs", (int, np.integer), min_val=1)


@dataclass
class EL2NConfig:
    """Hyper-parameters of ``el2n``."""

    epochs: int = field(
        default=10,
        metadata={"help": "average EL2N over the records of the first EPOCHS epochs (all if fewer)"},
    )
    fallback_epochs: int = field(default=20, metadata={"help": _FALLBACK_HELP})

    def __post_init__(self) -> None:
        V.check_scalar(self.epochs, "epochs", (int, np.integer), min_val=1)
        _check_fallback_epochs(self.fallback_epochs)


@dataclass
class ForgettingConfig:
    """Hyper-parameters of ``forgetting``."""

    fallback_epochs: int = field(default=20, metadata={"help": _FALLBACK_HELP})

    def __post_init__(self) -> None:
        _check_fallback_epochs(self.fallback_epochs)


@dataclass
class AUMConfig:
    """Hyper-parameters of ``aum``."""

    fallback_epochs: int = field(default=20, metadata={"help": _FALLBACK_HELP})

    def __post_init__(self) -> None:
        _check_fallback_epochs(self.fallback_epochs)


CONFIGS = {"el2n": EL2NConfig, "forgetting": ForgettingConfig, "aum": AUMConfig}


def _check_dynamics(dynamics: Any, n_samples: int):
    from ..nn.dynamics import TrainingDynamics

    if not isinstance(dynamics, TrainingDynamics):
        raise TypeError(
            f"dynamics must be a TrainingDynamics (topodata.nn.dynamics); got {type(dynamics).__name__}"
        )
    if dynamics.n_samples != n_samples:
        raise V.TopodataInputError(
            f"dynamics records {dynamics.n_samples} samples but features have {n_samples}; "
            "record the dynamics on the same training split"
        )
    return dynamics


def _seen_mean(values: np.ndarray, seen: np.ndarray, what: str) -> np.ndarray:
    """Mean over the rows where each sample was seen; a sample never seen there is an error."""
    count = seen.sum(axis=0)
    if (count == 0).any():
        raise V.TopodataInputError(
            f"{int((count == 0).sum())} sample(s) have no {what} record in the training dynamics; "
            "record every training sample (e.g. train the proxy on the whole split) or pass "
            "dynamics=None to use the linear-head fallback"
        )
    total = np.where(seen, values, 0.0).sum(axis=0, dtype=np.float64)
    return total / count


def el2n_scores(dynamics, *, epochs: int = 10) -> np.ndarray:
    """EL2N per sample: mean of ``‖softmax − onehot‖₂`` over the first ``epochs`` rows.

    Parameters
    ----------
    dynamics : TrainingDynamics
    epochs : int, default=10
        Rows ``0 .. epochs−1`` (in increasing epoch order) are averaged; all if fewer exist.

    Returns
    -------
    ndarray of shape (n_samples,), float64; higher = harder.
    """
    rows = slice(0, min(int(epochs), dynamics.n_epochs))
    return _seen_mean(dynamics.el2n[rows], dynamics.seen[rows], f"EL2N (first {epochs} epochs)")


def forgetting_scores(dynamics) -> np.ndarray:
    """Forgetting events per sample (Toneva et al. 2019); never-learned samples get max + 1.

    Returns
    -------
    ndarray of shape (n_samples,), float64 holding integer counts; higher = harder.

    Examples
    --------
    >>> import numpy as np
    >>> from topodata.nn.dynamics import TrainingDynamics
    >>> c = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1]], bool)  # 4 epochs, 3 samples
    >>> forgetting_scores(TrainingDynamics(c, np.zeros(c.shape), np.zeros(c.shape))).tolist()
    [2.0, 3.0, 1.0]
    """
    seen = dynamics.seen
    correct = dynamics.correct & seen
    n_ep, n = seen.shape
    cols = np.arange(n)
    # last epoch (≤ t) in which each sample was seen, by a running maximum over epoch numbers
    last = np.maximum.accumulate(np.where(seen, np.arange(n_ep)[:, None], -1), axis=0)
    prev = np.vstack([np.full((1, n), -1), last[:-1]])  # last presentation strictly before t
    prev_correct = (prev >= 0) & correct[np.maximum(prev, 0), cols]
    events = (seen & ~correct & prev_correct).sum(axis=0).astype(np.float64)
    never = ~correct.any(axis=0)
    if never.any():
        events[never] = events.max() + 1.0
    return events


def aum_scores(dynamics) -> np.ndarray:
    """Negative area under the margin: ``−mean_t (z_y − max_{j≠y} z_j)`` over recorded epochs.

    Returns
    -------
    ndarray of shape (n_samples,), float64; higher = harder (low AUM).
    """
    return -_seen_mean(dynamics.margin, dynamics.seen, "margin")


#: difficulty scores by name, each ``f(dynamics) -> scores`` with higher = harder
DIFFICULTY_SCORES: dict[str, Callable[..., np.ndarray]] = {
    "aum": aum_scores,
    "forgetting": forgetting_scores,
    "el2n": el2n_scores,
}


def _resolve_dynamics(features, labels, dynamics, rng: np.random.Generator, fallback_epochs: int):
    """The recorded dynamics, or the linear-head fallback trained with a seed drawn from ``rng``."""
    if dynamics is not None:
        return _check_dynamics(dynamics, labels.shape[0]), "recorded"
    from ..nn.dynamics import dynamics_from_features

    d = dynamics_from_features(
        features, labels, epochs=int(fallback_epochs), random_state=V.derive_seed(rng)
    )
    return d, f"fallback: linear softmax head on the features, {int(fallback_epochs)} epochs"


def difficulty_scores(
    features: np.ndarray,
    labels: np.ndarray,
    dynamics: Any,
    *,
    score: str,
    rng: np.random.Generator,
    fallback_epochs: int = 20,
    el2n_epochs: int = EL2NConfig.epochs,
) -> tuple[np.ndarray, dict[str, Any], float]:
    """A per-sample difficulty (higher = harder) for methods built on one (CCS, D2).

    Returns
    -------
    scores : ndarray of shape (n_samples,), float64
    info : dict
        ``{"dynamics": "recorded" | "fallback: …"}`` plus ``el2n_epochs`` when ``score='el2n'``;
        merged into the method's ``params``.
    seconds : float
        Time spent (mostly the fallback training, if any).
    """
    V.check_options(score, "score", tuple(DIFFICULTY_SCORES))
    t0 = time.perf_counter()
    d, source = _resolve_dynamics(features, labels, dynamics, rng, fallback_epochs)
    info: dict[str, Any] = {"dynamics": source}
    if score == "el2n":
        s = el2n_scores(d, epochs=el2n_epochs)
        info["el2n_epochs"] = int(el2n_epochs)
    else:
        s = DIFFICULTY_SCORES[score](d)
    return s, info, time.perf_counter() - t0


def _score_method(cfg, features, labels, dynamics, rng, scorer) -> MethodOutput:
    t0 = time.perf_counter()
    d, source = _resolve_dynamics(features, labels, dynamics, rng, cfg.fallback_epochs)
    t1 = time.perf_counter()
    scores = scorer(d)
    t2 = time.perf_counter()
    return MethodOutput(
        scores=scores,
        params={**asdict(cfg), "dynamics": source},
        timings_s={"dynamics": t1 - t0, "scores": t2 - t1},
    )


def el2n(features, labels, *, budgets, rng, dynamics=None, **params) -> MethodOutput:
    """EL2N scores (higher = larger early error = harder); see the module docstring.

    Parameters
    ----------
    features, labels, budgets, rng, dynamics
        The method signature of :mod:`topodata.scores`.
    **params
        Fields of :class:`EL2NConfig`.
    """
    cfg = EL2NConfig(**params)
    return _score_method(cfg, features, labels, dynamics, rng, lambda d: el2n_scores(d, epochs=cfg.epochs))


def forgetting(features, labels, *, budgets, rng, dynamics=None, **params) -> MethodOutput:
    """Forgetting-event counts (higher = forgotten more often = harder); see the module docstring.

    ``**params`` are the fields of :class:`ForgettingConfig`.
    """
    return _score_method(ForgettingConfig(**params), features, labels, dynamics, rng, forgetting_scores)


def aum(features, labels, *, budgets, rng, dynamics=None, **params) -> MethodOutput:
    """−AUM (higher = smaller margin = harder); see the module docstring.

    ``**params`` are the fields of :class:`AUMConfig`.
    """
    return _score_method(AUMConfig(**params), features, labels, dynamics, rng, aum_scores)
