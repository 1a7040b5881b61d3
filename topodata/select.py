"""Selection: budgets per class, score → subset strategies, the public ``select`` and export.

``rate`` is always the fraction *removed*; the kept count is ``n - floor(rate * n)``.
Indices are sorted int64 positions in the training split (docs/design.md#the-selection-contract).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _validation as V
from ._io import load_npy
from ._meta import largest_remainder, n_kept, versions  # re-exported: the rules live in the leaf module
from ._threads import thread_count
from .extrapolate import check_extrapolation, score_and_extrapolate
from .scores import MethodOutput, check_method_params, get_method

__all__ = [
    "SelectionResult",
    "select",
    "n_kept",
    "class_budgets",
    "class_boundary",
    "select_from_scores",
    "coverage_cut",
    "dedup_setting",
    "auto_beta",
    "save_selection",
    "to_subset",
    "load_indices",
    "STRATEGIES",
    "BALANCES",
]

STRATEGIES = ("coverage", "hard", "easy", "random")
SAMPLERS = ("draw", "key")


BALANCES = ("proportional", "balanced", "boundary")
#: Under ``class_balance='boundary'`` this share of the kept count follows the classes' boundary
#: mass; the rest follows class sizes (``docs/algorithms.md``, class budgets).
BOUNDARY_SHARE = 0.5
#: Neighbours (the sample itself included) of the feature kNN graph whose labels measure a class's
#: boundary mass: the graph TopoPrune hands UMAP (``umap_neighbors``).
BOUNDARY_NEIGHBORS = 15


def class_budgets(
    labels: np.ndarray, n_keep: int, *, balance: str = "proportional", boundary: Any = None,
    distinct: Any = None,
) -> dict[int, int]:
    """Split ``n_keep`` over classes so that the budgets sum exactly to ``n_keep``.

    ``proportional``: largest-remainder apportionment of ``n_keep * n_c / n`` (each budget is within
    one of its proportional share; ties broken by class id). ``balanced``: as equal as possible,
    capped at each class's size, the surplus handed to the classes that still have room.
    ``boundary``: :data:`BOUNDARY_SHARE` of the budget in proportion to each class's boundary mass
    ``n_c b_c`` (``boundary``: one ``b_c`` per class in sorted class order, e.g. from
    :func:`class_boundary`), the rest in proportion to class sizes; capped at class sizes. A class
    whose samples have no neighbour of another class is learned from few of them; the errors of a
    model trained on a small subset sit where classes touch.

    ``distinct`` (one count per class, e.g. of near-duplicate groups): the budgets are first capped
    at these counts until every distinct item of every class is in (or ``n_keep`` is spent), and only
    the rest goes to second copies, with the same weights. A class whose weight asks for more than
    its distinct items then hands the surplus to classes with uncovered items instead of spending it
    on copies.

    >>> y = np.repeat([0, 1, 2], 100)
    >>> class_budgets(y, 30, balance="boundary", boundary=[0.0, 0.1, 0.3])
    {0: 5, 1: 9, 2: 16}
    """
    V.check_options(balance, "class_balance", BALANCES)
    classes, counts = np.unique(labels, return_counts=True)
    n = int(counts.sum())
    if not 0 <= n_keep <= n:
        raise V.TopodataInputError(f"n_keep must be in [0, {n}]; got {n_keep}")
    if distinct is not None:
        distinct = np.asarray(distinct, dtype=np.int64)
        if distinct.shape != counts.shape or (distinct < 0).any() or (distinct > counts).any():
            raise V.TopodataInputError(f"distinct must be {counts.size} counts, one per class, each within its "
                                       "class size")
    if balance == "proportional":  # never reaches a cap: plain largest remainder
        weights = counts.astype(np.float64)
    elif balance == "boundary":
        if boundary is None:
            raise V.TopodataInputError("class_balance='boundary' needs the classes' boundary shares")
        b = np.asarray(boundary, dtype=np.float64)
        if b.shape != counts.shape or not np.all(np.isfinite(b)) or (b < 0).any():
            raise V.TopodataInputError(f"boundary must be {counts.size} non-negative finite shares, one per class")
        mass = counts * b
        weights = counts / n if mass.sum() <= 0 else (
            (1 - BOUNDARY_SHARE) * counts / n + BOUNDARY_SHARE * mass / mass.sum())
    else:  # as equal as possible: equal weights, the same capped water-filling
        weights = np.ones(counts.size)
    if distinct is None:
        base = _capped_apportion(weights, counts, n_keep)
    else:  # distinct items first, then second copies
        first = _capped_apportion(weights, distinct, min(n_keep, int(distinct.sum())))
        base = first + _capped_apportion(weights, counts - distinct, n_keep - int(first.sum()))
    return {int(c): int(b) for c, b in zip(classes, base)}


def _capped_apportion(weights: np.ndarray, caps: np.ndarray, total: int) -> np.ndarray:
    """Integer shares of ``total`` in proportion to ``weights``, none above its cap, summing to ``total``.

    Water-filling: a share that would pass its cap is fixed at the cap and the rest is shared again
    among the others (at most one pass per group), then largest remainders.
    """
    out = np.zeros(caps.shape, dtype=np.int64)
    open_ = np.ones(caps.shape, dtype=bool)
    left = int(total)
    while open_.any():
        w = np.where(open_, weights, 0.0)
        if w.sum() <= 0:
            w = np.where(open_, caps.astype(np.float64), 0.0)
        want = left * w / w.sum()
        over = open_ & (want >= caps)
        if not over.any():
            shares = largest_remainder(w, left)
            shares = np.minimum(shares, caps)  # rounding can lift one share by 1 onto its cap, never past
            out[open_] = shares[open_]
            left -= int(shares[open_].sum())
            break
        out[over] = caps[over]
        left -= int(caps[over].sum())
        open_ &= ~over
    if left:  # rounding met a cap: hand the units to groups with room, largest weight first
        for i in np.argsort(-weights, kind="stable"):
            give = min(left, int(caps[i] - out[i]))
            out[i] += give
            left -= give
    return out


def class_boundary(features: np.ndarray, labels: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """Each class's boundary share: the mean fraction of a sample's feature neighbours in another class.

    The neighbours are the :data:`BOUNDARY_NEIGHBORS` − 1 nearest samples (any class) in the
    L2-normalised features: the graph TopoPrune gives UMAP, as :func:`topodata.neighbors.knn`
    builds it (exact up to 100,000 rows, IVF above). Returns one share per class, in sorted class
    order.

    >>> rng = np.random.default_rng(0)
    >>> x = np.vstack([rng.normal([5, 0], 1, (20, 2)), rng.normal([0, 5], 1, (20, 2))])
    >>> class_boundary(x, np.repeat([0, 1], 20), rng=rng).tolist()  # 14 neighbours, all in the own class
    [0.0, 0.0]
    """
    return _class_boundary(features, labels, rng)[0]


def _class_boundary(features, labels, rng, method: str = "auto"):
    """``(shares, (xn, indices, dists))``: the graph of all normalised rows ``xn`` is handed on to the
    near-duplicate groups and the method, so that one selection builds one feature kNN graph (with
    the method's ``knn_method`` index when it names one)."""
    from .manifold import l2_normalize
    from .neighbors import knn
    from .scores.topoprune import label_disagreement

    classes, y = np.unique(labels, return_inverse=True)
    k = min(BOUNDARY_NEIGHBORS, y.shape[0])
    xn = l2_normalize(features)
    idx, dist = knn(xn, k, method=method, random_state=V.derive_seed(rng))
    foreign = label_disagreement(idx, y)
    total = np.bincount(y, weights=foreign, minlength=classes.size)
    count = np.bincount(y, minlength=classes.size)
    return total / np.maximum(count, 1), (xn, idx, dist)


def auto_beta(rate: float, slope: float = 0.25, cap: float = 1.0, start: float = 0.5) -> float:
    """Fraction of most-scored samples dropped per class; grows with the rate.

    ``min(cap, max(0, slope (rate - start)))``: 0 up to rate ``start``. A method sets its own
    ``(slope, cap, start)`` in ``MethodSpec.auto_beta`` (TopoPrune ``(0.25, 0.075)``; CCS
    ``(1, 1, 0.6)``, the authors' 0.2 at 80% and 0.3 at 90% pruned). Override with ``beta=``.

    >>> auto_beta(0.9), auto_beta(0.9, 1.0, 1.0, 0.6)
    (0.1, 0.3)
    """
    return float(round(min(cap, max(0.0, slope * (rate - start))), 12))


def _coverage_pick(
    idx: np.ndarray, s: np.ndarray, budget: int, n_strata: int, rng: np.random.Generator,
    keys: np.ndarray | None = None,
) -> np.ndarray:
    """CCS-style coverage: equal-width score strata, budget spread evenly, smallest strata first.

    With ``keys`` (one random key per sample of the dataset, drawn once from the seed) each stratum
    keeps its members with the smallest keys instead of a fresh draw, so a sample that stays in its
    stratum when the scores move a little stays selected (stable under embedding noise).
    """

    def pick(members: np.ndarray, size: int) -> np.ndarray:
        if keys is None:
            return rng.choice(members, size=size, replace=False)
        return members[np.argsort(keys[members], kind="stable")[:size]]

    if budget >= idx.size:
        return idx
    lo, hi = float(s.min()), float(s.max())
    if hi <= lo:
        return pick(idx, budget)
    edges = np.linspace(lo, hi, n_strata + 1)
    stratum = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, n_strata - 1)
    members = [idx[stratum == k] for k in range(n_strata)]
    members = [m for m in members if m.size]
    # smallest strata first; equal sizes in a seeded order (a stable sort would hand the rounding
    # leftovers to the higher-score strata every time)
    order = np.lexsort((rng.permutation(len(members)), [m.size for m in members]))
    picked = []
    left = budget
    for j, k in enumerate(order):
        share = left // (len(order) - j)
        take = min(share, members[k].size)
        if take:
            picked.append(pick(members[k], take))
        left -= take
    out = np.concatenate(picked) if picked else np.empty(0, np.int64)
    if left:  # rounding leftovers: from what was not yet picked, at random
        rest = np.setdiff1d(idx, out)
        out = np.concatenate([out, pick(rest, left)])
    return out


def select_from_scores(
    scores: np.ndarray,
    labels: np.ndarray,
    budgets: dict[int, int],
    *,
    strategy: str = "coverage",
    beta: float | dict[int, float] = 0.0,
    n_strata: int = 50,
    sampler: str = "key",
    rng: np.random.Generator,
    suspects: np.ndarray | None = None,
) -> np.ndarray:
    """Turn per-sample scores (higher = harder) into kept indices, class by class.

    strategy : {'coverage', 'hard', 'easy', 'random'}
        ``coverage`` drops the top ``beta`` fraction of each class (likely noise), then spreads the
        budget evenly over ``n_strata`` equal-width score strata with a seeded draw inside each;
        ``hard``/``easy`` keep the highest/lowest scores (ties by a seeded permutation); ``random``
        ignores scores.
    beta : float or dict {class_id: float}
        Fraction of each class cut under ``coverage`` (one value, or one per class).
    sampler : {'draw', 'key'}
        Inside a coverage stratum: a fresh seeded draw, or the members with the smallest of one
        random key per sample (drawn once); ``key`` keeps the selection stable when scores shift.
    suspects : ndarray of bool, shape (n_samples,), optional
        Samples flagged as likely label errors: the coverage cut removes them first (highest
        score first), then the highest-scored others, ``floor(beta_c n_c)`` in all.
    """
    V.check_options(strategy, "strategy", STRATEGIES)
    V.check_options(sampler, "sampler", SAMPLERS)
    keys = rng.random(scores.shape[0]) if sampler == "key" and strategy == "coverage" else None
    kept = []
    for c, budget in budgets.items():
        idx = np.flatnonzero(labels == c)
        if budget == 0:
            continue
        s = scores[idx]
        if strategy != "random" and np.isnan(s).any():
            raise ValueError(f"strategy {strategy!r} needs a score for every sample; class {c} has NaN")
        if strategy == "random":
            kept.append(rng.choice(idx, size=budget, replace=False))
        elif strategy in ("hard", "easy"):
            key = -s if strategy == "hard" else s
            # ties (e.g. integer forgetting counts) broken by a seeded permutation, not by index
            order = np.lexsort((rng.permutation(idx.size), key))
            kept.append(idx[order[:budget]])
        else:
            rest = np.setdiff1d(idx, _class_cut(idx, s, budget, beta.get(c, 0.0) if isinstance(beta, dict) else beta,
                                                None if suspects is None else suspects[idx]))
            kept.append(_coverage_pick(rest, scores[rest], budget, n_strata, rng, keys))
    out = np.concatenate(kept) if kept else np.empty(0, np.int64)
    return np.sort(out.astype(np.int64))


def _class_cut(idx: np.ndarray, s: np.ndarray, budget: int, beta: float, flagged: np.ndarray | None) -> np.ndarray:
    """The coverage cut of one class: its ``min(floor(beta n_c), n_c - budget)`` highest scores,
    flagged samples first (each group by decreasing score, ties in index order)."""
    n_drop = min(int(math.floor(beta * idx.size + 1e-9)), idx.size - budget)
    order = np.argsort(-s, kind="stable") if flagged is None else np.lexsort((-s, ~flagged))
    return idx[order[:n_drop]]


def coverage_cut(
    scores: np.ndarray,
    labels: np.ndarray,
    budgets: dict[int, int],
    beta: float | dict[int, float],
    *,
    suspects: np.ndarray | None = None,
) -> np.ndarray:
    """Sorted indices the ``coverage`` strategy cuts as likely noise before filling its strata.

    The same rule :func:`select_from_scores` applies (classes without budget are skipped), for
    whoever needs to say afterwards which samples were cut (the selection report).

    >>> s = np.array([0.1, 0.9, 0.5, 0.8, 0.2, 0.7]); y = np.array([0, 0, 0, 1, 1, 1])
    >>> coverage_cut(s, y, {0: 1, 1: 1}, 0.34).tolist()
    [1, 3]
    """
    cut = [_class_cut(idx, scores[idx], budget, beta.get(c, 0.0) if isinstance(beta, dict) else beta,
                      None if suspects is None else suspects[idx])
           for c, budget in budgets.items() if budget and (idx := np.flatnonzero(labels == c)).size]
    return np.sort(np.concatenate(cut)).astype(np.int64) if cut else np.empty(0, np.int64)


@dataclass
class SelectionResult:
    """Outcome of :func:`select`.

    indices : ndarray of int64, sorted, unique kept positions in the training split.
    scores : ndarray of float64, one per training sample (NaN where the method has none).
    manifest : dict written to ``manifest.json`` (docs/design.md#topodata-select).
    extras : arrays for plots (manifold coordinates, example diagrams); not serialised.
    """

    indices: np.ndarray
    scores: np.ndarray
    manifest: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def n_total(self) -> int:
        return int(self.scores.shape[0])

    @property
    def mask(self) -> np.ndarray:
        """Boolean mask of shape (n_total,), True where kept."""
        m = np.zeros(self.n_total, dtype=bool)
        m[self.indices] = True
        return m


def select(
    features: Any,
    labels: Any,
    *,
    rate: float,
    method: str | None = None,
    random_state: Any = 0,
    class_balance: str | None = None,
    strategy: str | None = None,
    beta: float | str = "auto",
    n_strata: int = 50,
    sampler: str = "key",
    dedup: bool | float | str | np.ndarray | None = None,
    dynamics: Any = None,
    dataset: str = "arrays",
    method_params: dict[str, Any] | None = None,
    scores: Any = None,
    score_fraction: float | None = None,
    extrapolate: str | None = None,
    extrapolate_params: dict[str, Any] | None = None,
    engine: str = "inprocess",
    ray_address: str | None = None,
) -> SelectionResult:
    """Choose which training samples to keep.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features) or None
        Latent features (e.g. penultimate activations). Ignored by ``method='random'`` and with
        ``scores`` apart from its length (and by ``dedup``); may then be None.
    labels : array-like of shape (n_samples,)
        Class ids (non-negative integers), or class names (strings, negative integers): these are
        numbered in sorted order (:func:`topodata._validation.encode_labels`), the manifest's
        per-class keys are those numbers and its ``classes`` lists the names.
    rate : float in (0, 1)
        Fraction *removed*; ``n - floor(rate * n)`` samples are kept.
    method : str, optional
        One of :func:`topodata.scores.available_methods`; default ``'topoprune'``.
    random_state : None, int or numpy Generator, default=0
        The only source of randomness. Same value ⇒ identical indices.
    class_balance : {'proportional', 'balanced', 'boundary'} or None, default=None
        Per-class budgets (:func:`class_budgets`): in proportion to class sizes, as equal as
        possible, or half by class size and half by each class's boundary mass in the feature kNN
        graph (:func:`class_boundary`; needs ``features``). None: the method's own (``boundary``
        for TopoPrune, ``proportional`` for the others and for ``scores``).
    strategy : {'coverage', 'hard', 'easy', 'random'} or None
        How scores become a subset; None uses the method's own default.
    beta : float or 'auto', default='auto'
        Fraction cut per class under ``coverage`` before the strata (likely label noise).
        ``'auto'``: the method's rate schedule (:func:`auto_beta`), capped at the share of samples
        the method finds contested (TopoPrune: most of their feature neighbours carry another
        label; beyond it the cut would remove correct hard samples), then raised per class to the
        share it flags as likely label errors (TopoPrune: more than three quarters), so the cut
        follows the data's noise level.
    n_strata : int, default=50
        Number of score strata under ``coverage``.
    sampler : {'draw', 'key'}, default='key'
        How a coverage stratum is sampled (see :func:`select_from_scores`); ``key`` keeps the
        selection stable when the features (and so the scores) move a little.
    dedup : bool, float, 'auto', array of group ids or None, default=None
        Near-duplicate handling (:mod:`topodata.dedup`): groups of samples closer than a threshold
        in the L2-normalised features; one member per group is kept before any group gives a
        second, and the method chooses among the members still open. ``True``/``'auto'``: the
        automatic threshold; a float: that threshold; ``False``: off; None: the method's default
        (on for TopoPrune, off for the baselines); an integer array: the groups themselves, one
        id per sample (e.g. image copies from :func:`topodata.dedup.image_duplicate_groups`,
        which :func:`topodata.pipeline.select_dataset` uses for image datasets). A threshold
        needs ``features``.
    dynamics : TrainingDynamics, optional
        Per-sample training dynamics for ``el2n``/``forgetting``/``aum``/``ccs``/``d2``.
    method_params : dict, optional
        Hyper-parameters forwarded to the method.
    scores : array-like of shape (n_samples,), optional
        Per-sample scores of your own (higher = harder; e.g. from another tool, or a method's
        ``scores.npy`` to re-select at another rate or ``beta`` without recomputing it). No method
        runs; the budgets, strategy (default ``coverage``), ``beta`` and sampler are applied to
        them as to a method's, and the manifest names the method ``'precomputed'``. Cannot be
        combined with ``method``.
    score_fraction : float in (0, 1), optional
        Score extrapolation (:mod:`topodata.extrapolate`): the method scores only this seeded,
        class-stratified fraction (exactly the samples the training ``dynamics`` saw, when the
        proxy trained on a fraction), the extrapolator predicts the other scores, and the
        strategy runs on all samples. Methods that select by themselves without a per-sample
        score (``random``, ``kcenter``, ``herding``, ``moderate``) are refused; D2 contributes its
        node score (its greedy picks are not used). The manifest's ``params.extrapolation``
        records the fraction, extrapolator, its parameters and validation Spearman.
    extrapolate : {'knn', 'gnn'}, optional
        The extrapolator (default ``'knn'``); needs ``score_fraction``.
    extrapolate_params : dict, optional
        Its options (:class:`topodata.extrapolate.KNNConfig` / :class:`~topodata.extrapolate.GNNConfig`).
    engine : {'inprocess', 'ray'}, default='inprocess'
        Where the independent pieces of the method run (TopoPrune: the per-class local topology and
        flow, the manifold placement batches): in this process, or as Ray tasks
        (:mod:`topodata._engine`; ``pip install topodata[ray]``). Same seed, same indices.
    ray_address : str, optional
        With ``engine='ray'``: the cluster to join (``'auto'``, ``'ray://head:10001'``); None starts
        a local Ray (or uses the one this process already started).

    Returns
    -------
    SelectionResult

    Raises
    ------
    ValueError
        On a rate outside (0, 1), NaN/inf features, labels of another length, unknown method, or
        a class smaller than the method's neighbourhood.

    Examples
    --------
    >>> import numpy as np, topodata
    >>> x = np.random.default_rng(0).normal(size=(100, 4)); y = np.repeat([0, 1], 50)
    >>> res = topodata.select(x, y, rate=0.9, method="random", random_state=0)
    >>> len(res.indices)
    10
    """
    call = dict(locals())  # the arguments, to re-enter inside the engine below
    from ._engine import check_engine, current_engine, use_engine

    if current_engine().name != check_engine(engine, ray_address):
        with use_engine(engine, ray_address=ray_address):
            return select(**call)  # it records the engine in its manifest
    t_start = time.perf_counter()
    rate = V.check_rate(rate)
    method, spec, method_params, given = _resolve_method(method, method_params, dynamics, scores)
    extrap = check_extrapolation(None if given is not None else method, score_fraction, extrapolate,
                                 extrapolate_params, method_params=method_params, scores_given=given is not None)
    dedup = _dedup_groups_given(dedup)
    class_balance = class_balance or (spec.class_balance if spec is not None else "proportional")
    V.check_options(class_balance, "class_balance", BALANCES)
    if class_balance == "boundary" and features is None:
        raise V.TopodataInputError("class_balance='boundary' reads the features; pass them or choose another "
                                   "class_balance")
    labels, names = V.encode_labels(labels)
    x, y = _check_inputs(features, labels, spec, dedup, reads_x=class_balance == "boundary", names=names)
    if given is not None:
        given = V.check_features(given, name="scores", ndim=1, min_samples=0)
        if given.shape[0] != y.shape[0]:
            raise V.TopodataInputError(f"scores has {given.shape[0]} entries but labels {y.shape[0]}; one per sample")
    # more strata than samples only costs memory (1e9 strata would allocate gigabytes)
    V.check_scalar(n_strata, "n_strata", (int, np.integer), min_val=1, max_val=max(50, y.shape[0]))
    n_strata = int(n_strata)
    strategy_given = strategy is not None
    strategy = strategy or (spec.default_strategy if spec is not None else "coverage")
    V.check_options(strategy, "strategy", STRATEGIES)
    V.check_options(sampler, "sampler", SAMPLERS)
    auto = isinstance(beta, str) and beta == "auto"
    if auto:
        beta_v = auto_beta(rate, *(spec.auto_beta if spec is not None else ()))
    else:
        beta_v = float(V.check_scalar(beta, "beta", (int, float), min_val=0.0, max_val=1.0, include_max=False))
    dedup_threshold = _dedup_option(dedup, spec)
    seed_repr = int(random_state) if isinstance(random_state, (int, np.integer)) else (
        None if random_state is None else "generator")
    rng = V.check_random_state(random_state)

    n = y.shape[0]
    keep = n_kept(n, rate)
    if keep < 1:
        raise V.TopodataInputError(f"rate {rate} keeps no sample of {n}; lower --rate")
    t0 = time.perf_counter()
    graph_method = method_params.get("knn_method", "auto") if spec is not None and spec.shares_feature_graph else "auto"
    boundary, graph = _class_boundary(x, y, rng, graph_method) if class_balance == "boundary" else (None, None)
    t_boundary = time.perf_counter() - t0
    t0 = time.perf_counter()
    groups, distinct = None, None
    if dedup_threshold is not None:
        # the groups cap the budgets: no class spends on copies while another has uncovered groups
        from .dedup import dedup_rounds

        groups, dedup_thr = _dedup_groups(x, y, dedup_threshold, rng, graph)
        rank = dedup_rounds(groups, rng.random(y.shape[0]))  # 0 = the first copy of its group
        classes_, y_idx = np.unique(y, return_inverse=True)
        distinct = np.bincount(y_idx[rank == 0], minlength=classes_.size)
    t_dedup = time.perf_counter() - t0
    budgets = class_budgets(y, keep, balance=class_balance, boundary=boundary, distinct=distinct)
    empty = sorted(c for c, b in budgets.items() if b == 0)
    if empty:
        import warnings

        empty = empty if names is None else names[empty].tolist()
        warnings.warn(f"rate {rate} keeps no sample of class(es) {empty[:5]}; lower the rate or use "
                      "class_balance='balanced'", UserWarning, stacklevel=2)

    # near-duplicates: whole rounds (one member per group, then a second, ...) are kept outright;
    # the method chooses the rest among the next round's members (the pool)
    t0 = time.perf_counter()
    forced, pool, pool_budgets, dedup_info = np.empty(0, np.int64), None, budgets, None
    if groups is not None:
        forced, pool, pool_budgets, dedup_info = _dedup_plan(groups, rank, dedup_thr, dedup_threshold, y, budgets)
    t_dedup += time.perf_counter() - t0

    t0 = time.perf_counter()
    sub = (lambda a: a) if pool is None else (lambda a: a[pool])
    if spec is None:
        out = MethodOutput(scores=sub(given))
    elif extrap is not None:  # score a fraction, predict the rest; the pool reads the full vector
        full = score_and_extrapolate(spec, x, y, rate=rate, fraction=extrap[0], extrapolator=extrap[1],
                                     params=extrap[2], rng=rng, dynamics=dynamics, method_params=method_params)
        out = MethodOutput(scores=sub(full.scores), params=full.params, timings_s=full.timings_s,
                           suspects=None if full.suspects is None else sub(full.suspects), contested=full.contested)
    elif pool is not None and sum(pool_budgets.values()) == 0:
        out = MethodOutput(scores=np.full(pool.size, np.nan), indices=np.empty(0, np.int64))
    else:
        out: MethodOutput = spec.load()(
            sub(x), sub(y), budgets=pool_budgets, rng=rng,
            dynamics=_subset_dynamics(dynamics, pool), **method_params,
            **_shared_graph(spec, graph, pool),
        )
    t_method = time.perf_counter() - t0
    n_pool = n if pool is None else pool.size
    pool_scores = np.asarray(out.scores, dtype=np.float64)
    if pool_scores.shape != (n_pool,):
        raise RuntimeError(f"method {method!r} returned scores of shape {pool_scores.shape}; expected ({n_pool},)")
    suspects = None if out.suspects is None else np.asarray(out.suspects, dtype=bool)
    capped = auto and out.contested is not None and out.indices is None
    if capped:  # the schedule cuts at most the contested share (MethodOutput.contested)
        beta_v = min(beta_v, float(out.contested))

    _warn_ignored(method, out.indices is not None, strategy_given=strategy_given, strategy=strategy,
                  beta=beta, n_strata=n_strata, sampler=sampler)
    t0 = time.perf_counter()
    cut = None
    if out.indices is not None:
        picked = np.unique(np.asarray(out.indices, dtype=np.int64))
    else:
        cut = _noise_cut(sub(y), beta_v, suspects if auto else None) if strategy == "coverage" else None
        picked = select_from_scores(
            pool_scores, sub(y), pool_budgets, strategy=strategy, beta=cut if cut is not None else beta_v,
            n_strata=n_strata, sampler=sampler, rng=rng, suspects=suspects if auto else None,
        )
    indices = np.sort(np.concatenate([forced, sub(np.arange(n))[picked]])).astype(np.int64)
    t_select = time.perf_counter() - t0
    _check_budgets(indices, y, budgets, method)
    scores_full = pool_scores if pool is None else np.full(n, np.nan)
    if pool is not None:
        scores_full[pool] = pool_scores

    timings = {f"{method}.{k}": float(v) for k, v in out.timings_s.items()}
    if dedup_info is not None:
        timings["dedup"] = t_dedup
        groups = dedup_info.pop("_groups")
        dedup_info["distinct_kept"] = int(np.unique(groups[indices]).size)
    if boundary is not None:
        timings["class_boundary"] = t_boundary
    timings.update({"method": t_method, "select": t_select, "total": time.perf_counter() - t_start})
    coverage = out.indices is None and strategy == "coverage"
    params = {
        "class_balance": class_balance,
        "class_boundary": None if boundary is None else {str(int(c)): float(b) for c, b in
                                                         zip(np.unique(y), boundary)},
        "strategy": strategy if out.indices is None else "method",
        "beta": beta_v if coverage else None,
        "beta_rule": _beta_rule(auto, capped, suspects is not None) if coverage else None,
        "contested_share": float(out.contested) if coverage and out.contested is not None else None,
        "n_strata": n_strata if coverage else None,
        "sampler": sampler if coverage else None,
        "dedup": dedup_info,
        **out.params,
    }
    if coverage and cut is not None:
        params["beta_per_class"] = {str(c): v for c, v in cut.items()}
        params["n_flagged"] = None if suspects is None else int(suspects.sum())
    manifest = _manifest(dataset=dataset, y=y, indices=indices, rate=rate, method=method, seed=seed_repr,
                         params=params, timings=timings)
    if names is not None:  # the per-class keys are ids; classes[id] is the label as given
        manifest["classes"] = names.tolist()
    if current_engine().name != "inprocess":  # entered above, or by the caller (the pipeline's embed stage)
        manifest["engine"] = current_engine().describe()
    extras = dict(out.extras)
    if suspects is not None:  # in the index space of the whole training split
        extras["suspects"] = np.zeros(n, dtype=bool)
        extras["suspects"][sub(np.arange(n))] = suspects
    if dedup_info is not None:
        extras["dedup_groups"] = groups
    if pool is not None:  # the method saw these rows only: its per-row extras (manifold, ...) are theirs
        extras["method_rows"] = pool
    return SelectionResult(indices=indices, scores=scores_full, manifest=manifest, extras=extras)


def _manifest(*, dataset, y, indices, rate, method, seed, params, timings) -> dict[str, Any]:
    """The ``manifest.json`` of a selection (its keys: ``docs/design.md#topodata-select``)."""
    classes, kept_counts = np.unique(y[indices], return_counts=True)
    return {
        "dataset": dataset,
        "n_total": int(y.shape[0]),
        "n_kept": int(indices.size),
        "rate": rate,
        "rounding": "n_kept = n_total - floor(rate * n_total)",
        "method": method,
        "seed": seed,
        "params": _jsonable(params),
        "versions": versions(),
        "threads": thread_count(),
        "timings_s": timings,
        "class_counts_kept": {str(int(c)): int(k) for c, k in zip(classes, kept_counts)},
        "score_direction": "higher = harder / more atypical (NaN: no per-sample score)",
    }


def _warn_ignored(method, selects_itself, *, strategy_given, strategy, beta, n_strata, sampler) -> None:
    """Say when options were given that the chosen method does not use (cleanlab's habit)."""
    import warnings

    ignored = []
    if selects_itself and strategy_given:
        ignored.append("strategy")
    if selects_itself or strategy != "coverage":
        ignored += [name for name, value, default in (("beta", beta, "auto"), ("n_strata", n_strata, 50),
                                                       ("sampler", sampler, "key")) if value != default]
    if ignored:
        why = f"method {method!r} selects by itself" if selects_itself else f"strategy {strategy!r} has no strata"
        warnings.warn(f"{', '.join(ignored)} ignored: {why}", UserWarning, stacklevel=3)


def _resolve_method(method, method_params, dynamics, scores):
    """``(name, spec or None, params, given scores or None)``; refuses scores mixed with a method."""
    if scores is not None:
        if method is not None or method_params or dynamics is not None:
            raise V.TopodataInputError("give either scores= or a method (with its method_params/dynamics), not both")
        return "precomputed", None, {}, scores
    method = method or "topoprune"
    return method, get_method(method), check_method_params(method, method_params), None


def _check_inputs(features, labels, spec, dedup, *, reads_x: bool = False, names=None):
    """Validated ``(x, y)``; only the labels (and the features' length) when nothing reads the features."""
    # a dedup threshold reads the features; given group ids do not
    dedup_reads_x = not isinstance(dedup, np.ndarray) and dedup not in (None, False)
    needs_x = (spec is not None and spec.needs_features) or ((dedup_reads_x or reads_x) and features is not None)
    if needs_x:
        # methods check their own neighbourhood sizes against the class sizes (one line, exit 2)
        x, y = V.check_features_labels(features, labels, min_per_class=spec.min_per_class if spec else 1,
                                       names=names)
    else:
        y = V.check_labels(labels)
        x = np.asarray(features) if features is not None else np.empty((y.shape[0], 0))
        if x.ndim == 0:
            raise V.TopodataInputError("features must have one row per sample; got a scalar")
        if x.shape[0] != y.shape[0]:
            y = V.check_labels(labels, n_samples=x.shape[0])
    if y.shape[0] < 2:
        raise V.TopodataInputError(f"need at least 2 samples; got {y.shape[0]}")
    return x, y


def dedup_setting(dedup: Any, method: str | None) -> float | str | np.ndarray | None:
    """What :func:`select` does about near-duplicates for ``dedup`` and ``method``.

    A float threshold, ``'auto'``, the given group ids, or None when off (``dedup=None`` takes
    the method's default; no method, i.e. given scores, defaults to off).
    """
    return _dedup_option(_dedup_groups_given(dedup), get_method(method) if method is not None else None)


def _dedup_groups_given(dedup):
    """``dedup`` unchanged, or a validated int64 array when it holds group ids (a list or array)."""
    if isinstance(dedup, (bool, str, int, float, np.integer, np.floating)) or dedup is None:
        return dedup
    groups = np.asarray(dedup)
    if groups.ndim != 1 or (groups.size and not np.issubdtype(groups.dtype, np.integer)):
        raise V.TopodataInputError(f"dedup groups must be one integer group id per sample; got {groups.dtype} "
                                   f"of shape {groups.shape}")
    return groups.astype(np.int64)


def _dedup_option(dedup, spec) -> float | str | np.ndarray | None:
    """The dedup threshold to use (a float or 'auto'), the given groups, or None when off."""
    if isinstance(dedup, np.ndarray):
        return dedup
    if dedup is None:
        dedup = spec.dedup if spec is not None else False
    if dedup is False or (isinstance(dedup, str) and dedup.lower() in ("off", "false", "none", "0")):
        return None
    if dedup is True or (isinstance(dedup, str) and dedup.lower() in ("auto", "on", "true", "1")):
        return "auto"
    if isinstance(dedup, str):
        try:
            dedup = float(dedup)
        except ValueError:
            raise V.TopodataInputError(f"dedup must be auto, off or a distance threshold; got {dedup!r}") from None
    return float(V.check_scalar(dedup, "dedup", (int, float), min_val=0.0, include_min=False))


def _dedup_groups(x, y, threshold, rng, graph=None):
    """``(groups, threshold used)``: near-duplicate group ids (0..G-1, one per sample), given or found.

    ``graph``: the kNN graph of the normalised features that the class boundary was measured on,
    ``(xn, indices, dists)``; its first columns are the graph the groups need.
    """
    from .dedup import near_duplicate_groups

    if isinstance(threshold, np.ndarray):  # groups given (e.g. image copies found in the pixels)
        if threshold.shape != y.shape:
            raise V.TopodataInputError(f"dedup has {threshold.shape[0]} group ids but labels {y.shape[0]}; one per sample")
        return np.unique(threshold, return_inverse=True)[1].astype(np.int64), None
    if x.ndim != 2 or x.shape[1] == 0:
        raise V.TopodataInputError("dedup needs features; pass them or use dedup=False")
    return near_duplicate_groups(x, threshold=threshold, random_state=rng,
                                 knn_graph=None if graph is None else graph[1:])


def _dedup_plan(groups, rank, thr, threshold, y, budgets):
    """``(forced, pool, pool_budgets, info)`` for near-duplicate-aware selection.

    Per class, the rounds ``rank`` of :func:`topodata.dedup.dedup_rounds` (round r = the r-th copy
    of every group that has one) are kept whole while the budget allows; the rest of the budget is chosen
    by the method among the members of the next round (the pool), so no group gives an r+1-th
    member before every group gave its r-th.
    """
    forced_mask = np.zeros(y.shape[0], dtype=bool)
    pool_mask = np.zeros(y.shape[0], dtype=bool)
    pool_budgets: dict[int, int] = {}
    for c, budget in budgets.items():  # a loop over classes, not samples
        in_c = y == c
        cum = np.cumsum(np.bincount(rank[in_c]))
        full = int(np.searchsorted(cum, budget, side="right"))  # rounds that fit whole
        forced_mask[in_c & (rank < full)] = True
        left = int(budget - (cum[full - 1] if full else 0))
        if left:
            pool_mask[in_c & (rank == full)] = True
            pool_budgets[c] = left
    pool = np.flatnonzero(pool_mask)
    sizes = np.bincount(groups)
    info = {
        "threshold": thr,
        "threshold_rule": ("groups given" if thr is None else "given" if threshold != "auto"
                           else "auto: factor x median k-th neighbour distance"),
        "n_groups": int(sizes.size),
        "n_in_groups": int(sizes[sizes > 1].sum()),
        "n_redundant": int(y.shape[0] - sizes.size),
        "largest_group": int(sizes.max()),
        "n_forced": int(forced_mask.sum()),
        "_groups": groups,
    }
    return np.flatnonzero(forced_mask), pool, pool_budgets, info


def _shared_graph(spec, graph, pool) -> dict[str, Any]:
    """``{'feature_graph': (indices, dists)}`` for a method that reuses the feature kNN graph the class
    boundary was measured on (built with the method's ``knn_method``; restricted to the dedup pool),
    else ``{}``."""
    if graph is None or not spec.shares_feature_graph:
        return {}
    from .neighbors import restrict_knn

    xn, idx, dist = graph
    if pool is None:
        return {"feature_graph": (idx, dist)}
    # a fixed IVF seed for the re-search (used above the exact size only): drawing one from the
    # selection's rng would shift every later draw, and with it the selections measured before
    return {"feature_graph": restrict_knn(xn, idx, dist, pool, random_state=0)}


def _beta_rule(auto: bool, capped: bool, flagged: bool) -> str:
    """How the manifest names the cut: given, or the auto schedule with its cap and flagged floor."""
    if not auto:
        return "given"
    rule = "min(schedule, contested share)" if capped else "schedule"
    return f"auto: max({rule}, flagged share)" if flagged else f"auto: {rule}"


def _noise_cut(y, beta, suspects) -> dict[int, float]:
    """Per-class cut: ``beta``, raised to the class's share of flagged samples when given."""
    classes = np.unique(y)
    if suspects is None:
        return {int(c): float(beta) for c in classes}
    share = np.bincount(y, weights=suspects.astype(np.float64), minlength=int(classes.max()) + 1)
    count = np.bincount(y, minlength=int(classes.max()) + 1)
    return {int(c): float(max(beta, share[c] / count[c])) for c in classes}


def _subset_dynamics(dynamics, pool):
    """The training dynamics of the pool's samples (columns), or the dynamics unchanged."""
    if dynamics is None or pool is None:
        return dynamics
    import dataclasses

    return dataclasses.replace(
        dynamics, correct=dynamics.correct[:, pool], margin=dynamics.margin[:, pool], el2n=dynamics.el2n[:, pool]
    )


def _check_budgets(indices: np.ndarray, labels: np.ndarray, budgets: dict[int, int], method: str) -> None:
    """Every method must hit the per-class budgets exactly; a miss is a bug, not bad input."""
    got = {c: 0 for c in budgets}
    cls, cnt = np.unique(labels[indices], return_counts=True)
    got.update({int(c): int(k) for c, k in zip(cls, cnt)})
    if got != budgets:
        raise RuntimeError(f"method {method!r} kept {got} per class; budgets were {budgets}")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_selection(result: SelectionResult, out_dir: str | Path, *, extra_files: dict[str, bytes] | None = None) -> list[Path]:
    """Write ``indices.npy``, ``indices.txt``, ``scores.npy``, ``manifest.json`` atomically.

    Where the method provides them, also ``suspects.npy`` (bool per sample: flagged as a likely
    label error, cut first) and ``dedup_groups.npy`` (int64 near-duplicate group per sample), which
    the selection report reads. Every file is first written under a temporary name in ``out_dir``
    and renamed only once all of them were written, so an error leaves no partial output behind.
    ``extra_files`` (e.g. PNG plots) join the same transaction.
    """
    import io

    from ._io import atomic_write_files, json_bytes

    buf_idx = io.BytesIO()
    np.save(buf_idx, np.ascontiguousarray(result.indices, dtype=np.int64))
    buf_sc = io.BytesIO()
    np.save(buf_sc, np.ascontiguousarray(result.scores, dtype=np.float64))
    files = {
        "indices.npy": buf_idx.getvalue(),
        "indices.txt": "".join(f"{i}\n" for i in result.indices.tolist()).encode(),
        "scores.npy": buf_sc.getvalue(),
        "manifest.json": json_bytes(result.manifest),
    }
    for name, dtype in (("suspects", bool), ("dedup_groups", np.int64)):
        arr = result.extras.get(name)
        if arr is not None:
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(arr, dtype=dtype))
            files[f"{name}.npy"] = buf.getvalue()
    files.update(extra_files or {})
    return atomic_write_files(out_dir, files)


def load_indices(
    source: Any, *, n_total: int | None = None, name: str = "indices", where: str | None = None
) -> np.ndarray:
    """Kept indices from a selection folder, an ``.npy``/``.txt`` file, an int array or a boolean mask.

    Parameters
    ----------
    source : str, path, array-like of int or of bool
        A folder written by ``topodata select`` (its ``indices.npy`` is read), a path to an
        ``.npy`` or ``.txt`` (one index per line) file, integer positions, or a boolean mask of
        length ``n_total``.
    n_total : int, optional
        Size of the training split; when given, every index must lie in ``[0, n_total)``.
    where : str, optional
        How the error names what the indices must fit (default: "a training split of n_total samples").

    Returns
    -------
    ndarray of int64, shape (n_kept,)
        Sorted, unique positions in the training split.

    Raises
    ------
    FileNotFoundError
        If a path does not exist (or a folder holds no ``indices.npy``).
    TopodataInputError
        If the indices are not 1-D integers, repeat a position, are empty or fall outside the split.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            path = path / "indices.npy"
        if not path.is_file():
            raise FileNotFoundError(
                f"{name}: {str(path)!r} not found; pass the folder written by `topodata select` "
                "or its indices.npy"
            )
        if path.suffix == ".txt":
            try:
                arr = np.loadtxt(path, dtype=np.int64, ndmin=1)
            except (ValueError, OSError) as exc:
                raise V.TopodataInputError(f"{name}: cannot read {str(path)!r} ({exc})") from None
        else:
            arr = load_npy(path, name)
        name = f"{name} ({path})"
    else:
        arr = np.asarray(source)
    if arr.dtype == bool:
        if arr.ndim != 1 or (n_total is not None and arr.shape[0] != n_total):
            raise V.TopodataInputError(
                f"{name}: a boolean mask must be 1-D of length n_train={n_total}; got shape {arr.shape}"
            )
        arr = np.flatnonzero(arr)
    if arr.ndim != 1:
        raise V.TopodataInputError(f"{name} must be 1-D; got shape {arr.shape}. Flatten it or pass indices.npy")
    if arr.dtype.kind not in "iu":
        raise V.TopodataInputError(
            f"{name} must be integer positions into the training split; got dtype {arr.dtype}"
        )
    arr = arr.astype(np.int64)
    if arr.size == 0:
        raise V.TopodataInputError(f"{name} is empty; a subset needs at least one sample")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or (n_total is not None and hi >= n_total):
        raise V.TopodataInputError(
            f"{name} range [{lo}, {hi}] does not fit {where or f'a training split of {n_total} samples'}; "
            "were they selected on another dataset?"
        )
    uniq = np.unique(arr)
    if uniq.size != arr.size:
        raise V.TopodataInputError(
            f"{name} repeats {arr.size - uniq.size} position(s); a selection keeps each sample once"
        )
    return uniq



def to_subset(dataset: Any, indices: Any):
    """Wrap a torch dataset (or anything indexable) into ``torch.utils.data.Subset``.

    ``indices`` is anything :func:`load_indices` reads: an array, a boolean mask, a path to
    ``indices.npy`` / ``indices.txt`` or a selection output folder. A Hugging Face
    ``datasets.Dataset`` gives ``dataset.select(indices)``, a ``datasets.Dataset`` again.
    """
    from torch.utils.data import Subset

    n = len(dataset)
    idx = load_indices(indices, n_total=n, where=f"a dataset of length {n}")
    if type(dataset).__module__.startswith("datasets."):  # Hugging Face: its own row selection
        return dataset.select(idx)
    return Subset(dataset, idx.tolist())
