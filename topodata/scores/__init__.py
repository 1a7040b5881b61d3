"""Scoring / selection methods behind one signature.

Every method is a plain function

    method(features, labels, *, budgets, rng, dynamics=None, **params) -> MethodOutput

- ``features``: float64 array of shape (n_samples, n_features), already validated and finite;
- ``labels``: int64 array of shape (n_samples,);
- ``budgets``: dict ``{class_id: n_keep}`` whose values sum exactly to the kept count;
- ``rng``: a ``np.random.Generator`` (the only source of randomness; derive int seeds from it);
- ``dynamics``: optional :class:`topodata.train.dynamics.TrainingDynamics` recorded during a proxy run;
- ``params``: the method's hyper-parameters (defaults in the registry below).

A method either returns only per-sample ``scores`` (then :func:`topodata.select.select_from_scores`
draws the subset with the chosen strategy), or also ``indices`` when it selects by itself
(k-center, herding, D2). Methods are imported lazily so that ``random`` needs neither torch nor UMAP.

Score direction, stated once: **higher score = harder / more important / more atypical**. The
``hard`` strategy keeps the highest scores, ``easy`` the lowest, ``coverage`` spreads over strata.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["MethodOutput", "MethodSpec", "METHODS", "get_method", "available_methods"]


@dataclass
class MethodOutput:
    """What a method returns.

    scores : ndarray of shape (n_samples,), float64, NaN where the method has no per-sample score.
    indices : ndarray of int64 or None; set when the method selects the subset itself.
    params : every hyper-parameter actually used (goes to ``manifest.json``).
    timings_s : seconds per internal stage (goes to ``manifest.json``).
    extras : arrays useful for plots (e.g. ``{"manifold_2d": ...}``); never written to the manifest.
    """

    scores: np.ndarray
    indices: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: where its function lives and what it needs."""

    name: str
    target: str  # "module:function", imported on first use
    summary: str
    needs_features: bool = True
    uses_dynamics: bool = False
    default_strategy: str = "coverage"  # how scores become a subset when the method returns none
    min_per_class: int = 1  # smallest class the method can handle (neighbourhood sizes)
    # beta='auto' under coverage: min(cap, slope * (rate - 0.5)), see topodata.select.auto_beta
    auto_beta: tuple[float, float] = (0.25, 1.0)  # (slope, cap)

    def load(self) -> Callable[..., MethodOutput]:
        module, func = self.target.split(":")
        return getattr(importlib.import_module(module), func)


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in [
        MethodSpec(
            "topoprune",
            "topodata.scores.topoprune:topoprune",
            "topological displacement on the UMAP manifold (DESIGN.md §5)",
            default_strategy="coverage",
            min_per_class=2,
            auto_beta=(0.25, 0.075),  # chosen on a validation split under CNN training (topoprune.py)
        ),
        MethodSpec(
            "random",
            "topodata.scores.random:random_scores",
            "class-stratified uniform random subset",
            needs_features=False,
            default_strategy="random",
        ),
        MethodSpec(
            "moderate",
            "topodata.scores.moderate:moderate",
            "distance to the class median in feature space (Moderate-DS)",
        ),
        MethodSpec("kcenter", "topodata.scores.kcenter:kcenter", "k-center greedy per class"),
        MethodSpec("herding", "topodata.scores.herding:herding", "kernel herding towards the class mean"),
        MethodSpec(
            "el2n", "topodata.scores.dynamics:el2n", "EL2N: error L2 norm early in training",
            uses_dynamics=True, default_strategy="hard",
        ),
        MethodSpec(
            "forgetting", "topodata.scores.dynamics:forgetting", "forgetting events during training",
            uses_dynamics=True, default_strategy="hard",
        ),
        MethodSpec(
            "aum", "topodata.scores.dynamics:aum", "area under the margin (low AUM = hard)",
            uses_dynamics=True, default_strategy="hard",
        ),
        MethodSpec(
            "ccs", "topodata.scores.ccs:ccs", "coverage-centric selection over a difficulty score",
            uses_dynamics=True,
        ),
        MethodSpec(
            "d2", "topodata.scores.d2:d2", "D2 pruning: message passing on the kNN graph", min_per_class=2,
            uses_dynamics=True,
        ),
    ]
}


def available_methods() -> list[str]:
    """Names accepted by ``select(method=...)`` and ``topodata select --method``."""
    return list(METHODS)


def get_method(name: str) -> MethodSpec:
    from .._validation import check_options

    check_options(name, "method", tuple(METHODS))
    return METHODS[name]


def budgets_array(labels: np.ndarray, budgets: dict[int, int]) -> np.ndarray:
    """Per-sample budget of the sample's class, handy for vectorised per-class work."""
    classes = np.array(sorted(budgets), dtype=np.int64)
    values = np.array([budgets[c] for c in classes], dtype=np.int64)
    return values[np.searchsorted(classes, labels)]
