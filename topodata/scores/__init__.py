"""Scoring / selection methods behind one signature.

Every method is a plain function

    method(features, labels, *, budgets, rng, dynamics=None, **params) -> MethodOutput

- ``features``: float64 array of shape (n_samples, n_features), already validated and finite;
- ``labels``: int64 array of shape (n_samples,);
- ``budgets``: dict ``{class_id: n_keep}`` whose values sum exactly to the kept count;
- ``rng``: a ``np.random.Generator`` (the only source of randomness; derive int seeds from it);
- ``dynamics``: optional :class:`topodata.nn.dynamics.TrainingDynamics` recorded during a proxy run;
- ``params``: the method's hyper-parameters (defaults in the registry below).

A method either returns only per-sample ``scores`` (then :func:`topodata.select.select_from_scores`
draws the subset with the chosen strategy), or also ``indices`` when it selects by itself
(k-center, herding, D2). Methods are imported lazily so that ``random`` needs neither torch nor UMAP.

Score direction, stated once: **higher score = harder / more important / more atypical**. The
``hard`` strategy keeps the highest scores, ``easy`` the lowest, ``coverage`` spreads over strata.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from .._validation import TopodataInputError, check_options

__all__ = ["MethodOutput", "MethodSpec", "METHODS", "get_method", "available_methods", "method_config",
           "check_method_params"]


@dataclass
class MethodOutput:
    """What a method returns.

    scores : ndarray of shape (n_samples,), float64, NaN where the method has no per-sample score.
    indices : ndarray of int64 or None; set when the method selects the subset itself.
    params : every hyper-parameter actually used (goes to ``manifest.json``).
    timings_s : seconds per internal stage (goes to ``manifest.json``).
    extras : arrays useful for plots (e.g. ``{"manifold_2d": ...}``); never written to the manifest.
    suspects : bool ndarray of shape (n_samples,) or None; samples the method judges likely label
        errors. Under ``beta='auto'`` the coverage cut removes them first and is at least their
        share of each class.
    contested : float or None; share of samples whose neighbours mostly carry another label. Under
        ``beta='auto'`` the rate schedule cuts at most this share: the cut is for mislabelled and
        ambiguous samples, and where the data holds fewer of them it would remove correct hard ones.
    """

    scores: np.ndarray
    indices: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    suspects: np.ndarray | None = None
    contested: float | None = None


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
    # beta='auto' under coverage: min(cap, slope * (rate - start)), see topodata.select.auto_beta
    auto_beta: tuple[float, ...] = (0.25, 1.0)  # (slope, cap[, start=0.5])
    dedup: bool = False  # near-duplicate handling by default (select(dedup=None))
    class_balance: str = "proportional"  # per-class budgets by default (select(class_balance=None))
    # takes feature_graph=(indices, dists): the exact kNN graph of the L2-normalised features, k=15
    # with self, that select already built for class_balance='boundary'
    shares_feature_graph: bool = False

    def load(self) -> Callable[..., MethodOutput]:
        module, func = self.target.split(":")
        return getattr(importlib.import_module(module), func)


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in [
        MethodSpec(
            "topoprune",
            "topodata.scores.topoprune:topoprune",
            "topological displacement on the UMAP manifold",
            default_strategy="coverage",
            auto_beta=(0.25, 0.075),  # chosen on a validation split under CNN training (docs/algorithms.md)
            dedup=True,
            class_balance="boundary",  # chosen on a validation split under CNN training (docs/algorithms.md)
            shares_feature_graph=True,
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
            auto_beta=(1.0, 1.0, 0.6),  # the authors' cut-offs: 0.2 at 80%, 0.3 at 90% pruned
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

    check_options(name, "method", tuple(METHODS))
    return METHODS[name]


def budgets_array(labels: np.ndarray, budgets: dict[int, int]) -> np.ndarray:
    """Per-sample budget of the sample's class, handy for vectorised per-class work."""
    classes = np.array(sorted(budgets), dtype=np.int64)
    values = np.array([budgets[c] for c in classes], dtype=np.int64)
    return values[np.searchsorted(classes, labels)]


def method_config(name: str) -> type | None:
    """The dataclass holding a method's hyper-parameters, or None if it declares none.

    A method's module exports it as ``CONFIG`` (or, for modules holding several methods, as
    ``CONFIGS[name]``); its fields are the ``method_params`` the method accepts.
    """
    module = importlib.import_module(get_method(name).target.split(":")[0])
    configs = getattr(module, "CONFIGS", None)
    if isinstance(configs, dict) and name in configs:
        return configs[name]
    config = getattr(module, "CONFIG", None)
    return config if config is not None and dataclasses.is_dataclass(config) else None


def check_method_params(method: str, params: Mapping[str, Any] | None, *, name: str = "method_params") -> dict:
    """Build ``method``'s config from ``params``, so that a bad option fails before any compute.

    Parameters
    ----------
    method : str
        A name of :func:`topodata.scores.available_methods`.
    params : mapping or None
        Hyper-parameters of the method (fields of its config dataclass).
    name : str, default='method_params'
        How the caller calls ``params`` in messages (a pipeline key, say).

    Returns
    -------
    dict
        ``params`` as a plain dict, unchanged.

    Raises
    ------
    TopodataInputError
        On an option the method does not have, or a value its config refuses (a choice outside
        the allowed ones, a number out of range); the message names the option.

    Examples
    --------
    >>> check_method_params("topoprune", {"k_local": 8})
    {'k_local': 8}
    >>> check_method_params("topoprune", {"manifold": "umpa"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    topodata._validation.TopodataInputError: method_params: manifold ...'umpa'
    """
    params = dict(params or {})
    config = method_config(method)
    fields = sorted(f.name for f in dataclasses.fields(config) if f.init) if config is not None else []
    unknown = sorted(set(params) - set(fields))
    if unknown:
        allowed = ", ".join(fields) if fields else "none"
        raise TopodataInputError(
            f"{name}: method {method!r} has no option {unknown[0]!r}; its options: {allowed}"
        )
    if config is not None:
        try:
            config(**params)
        except (TypeError, ValueError) as exc:  # TopodataInputError is a ValueError
            raise TopodataInputError(f"{name}: {exc}") from None
    return params
