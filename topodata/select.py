"""Selection: budgets per class, score → subset strategies, the public ``select`` and export.

``rate`` is always the fraction *removed*; the kept count is ``n - floor(rate * n)``.
Indices are sorted int64 positions in the training split (house rule 5).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _validation as V
from .scores import MethodOutput, get_method

__all__ = [
    "SelectionResult",
    "select",
    "n_kept",
    "class_budgets",
    "select_from_scores",
    "auto_beta",
    "save_selection",
    "to_subset",
    "load_indices",
    "STRATEGIES",
]

STRATEGIES = ("coverage", "hard", "easy", "random")
SAMPLERS = ("draw", "key")


def n_kept(n: int, rate: float) -> int:
    """Kept count for ``n`` samples at pruning ``rate``: ``n - floor(rate * n)``.

    A tiny epsilon guards against ``0.9 * 10 = 8.999999…`` style float errors.
    """
    return int(n - math.floor(rate * n + 1e-9))


def class_budgets(labels: np.ndarray, n_keep: int, *, balance: str = "proportional") -> dict[int, int]:
    """Split ``n_keep`` over classes so that the budgets sum exactly to ``n_keep``.

    ``proportional``: largest-remainder apportionment of ``n_keep * n_c / n`` (each budget is within
    one of its proportional share; ties broken by class id). ``balanced``: as equal as possible,
    capped at each class's size, the surplus handed to the classes that still have room.
    """
    V.check_options(balance, "class_balance", ("proportional", "balanced"))
    classes, counts = np.unique(labels, return_counts=True)
    n = int(counts.sum())
    if not 0 <= n_keep <= n:
        raise V.TopodataInputError(f"n_keep must be in [0, {n}]; got {n_keep}")
    if balance == "proportional":
        exact = n_keep * counts / n
        base = np.floor(exact).astype(np.int64)
        short = n_keep - int(base.sum())
        # stable sort on -remainder keeps class-id order among equal remainders
        order = np.argsort(-(exact - base), kind="stable")
        base[order[:short]] += 1
    else:
        base = np.zeros_like(counts)
        left = n_keep
        open_ = np.ones(len(counts), dtype=bool)
        while left > 0 and open_.any():
            share = left // int(open_.sum())
            if share == 0:  # fewer units than open classes: one each in class-id order
                idx = np.flatnonzero(open_)[:left]
                base[idx] += 1
                left = 0
                break
            give = np.where(open_, np.minimum(share, counts - base), 0)
            base += give
            left -= int(give.sum())
            open_ = base < counts
    return {int(c): int(b) for c, b in zip(classes, base)}


def auto_beta(rate: float, slope: float = 0.25, cap: float = 1.0) -> float:
    """Fraction of most-scored samples dropped per class; grows with the rate (DESIGN.md §5.5).

    ``min(cap, max(0, slope (rate - 0.5)))``. The default (0 up to rate 0.5, 0.1 at rate 0.9,
    0.1125 at 0.95) matches the hard-sample cut-offs CCS reports for high rates; a method may set
    its own ``(slope, cap)`` (``MethodSpec.auto_beta``; TopoPrune: ``(0.25, 0.075)``). Override
    with ``beta=``.
    """
    return float(min(cap, max(0.0, slope * (rate - 0.5))))


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
    order = np.argsort([m.size for m in members], kind="stable")
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
    beta: float = 0.0,
    n_strata: int = 50,
    sampler: str = "key",
    rng: np.random.Generator,
) -> np.ndarray:
    """Turn per-sample scores (higher = harder) into kept indices, class by class.

    strategy : {'coverage', 'hard', 'easy', 'random'}
        ``coverage`` drops the top ``beta`` fraction of each class (likely noise), then spreads the
        budget evenly over ``n_strata`` equal-width score strata with a seeded draw inside each;
        ``hard``/``easy`` keep the highest/lowest scores (ties by a seeded permutation); ``random``
        ignores scores.
    sampler : {'draw', 'key'}
        Inside a coverage stratum: a fresh seeded draw, or the members with the smallest of one
        random key per sample (drawn once); ``key`` keeps the selection stable when scores shift.
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
            n_drop = min(int(math.floor(beta * idx.size)), idx.size - budget)
            order = np.argsort(-s, kind="stable")
            rest = np.sort(idx[order[n_drop:]])
            kept.append(_coverage_pick(rest, scores[rest], budget, n_strata, rng, keys))
    out = np.concatenate(kept) if kept else np.empty(0, np.int64)
    return np.sort(out.astype(np.int64))


@dataclass
class SelectionResult:
    """Outcome of :func:`select`.

    indices : ndarray of int64, sorted, unique kept positions in the training split.
    scores : ndarray of float64, one per training sample (NaN where the method has none).
    manifest : dict written to ``manifest.json`` (DESIGN.md §4.1).
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


def versions() -> dict[str, str]:
    """Versions of the libraries that decide the result, for the manifest and ``topodata env``."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("topodata", "numpy", "scipy", "scikit-learn", "torch", "torchvision", "umap-learn",
                 "faiss-cpu", "ripser", "numba"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def select(
    features: Any,
    labels: Any,
    *,
    rate: float,
    method: str | None = None,
    random_state: Any = 0,
    class_balance: str = "proportional",
    strategy: str | None = None,
    beta: float | str = "auto",
    n_strata: int = 50,
    sampler: str = "key",
    dynamics: Any = None,
    dataset: str = "arrays",
    method_params: dict[str, Any] | None = None,
    scores: Any = None,
) -> SelectionResult:
    """Choose which training samples to keep.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features) or None
        Latent features (e.g. penultimate activations). Ignored by ``method='random'`` and with
        ``scores`` apart from its length; may then be None.
    labels : array-like of shape (n_samples,)
        Integer class ids.
    rate : float in (0, 1)
        Fraction *removed*; ``n - floor(rate * n)`` samples are kept.
    method : str, optional
        One of :func:`topodata.scores.available_methods`; default ``'topoprune'``.
    random_state : None, int or numpy Generator, default=0
        The only source of randomness. Same value ⇒ identical indices.
    class_balance : {'proportional', 'balanced'}, default='proportional'
    strategy : {'coverage', 'hard', 'easy', 'random'} or None
        How scores become a subset; None uses the method's own default.
    beta : float or 'auto', default='auto'
        Most-scored fraction dropped per class under ``coverage``; ``'auto'``: the method's
        schedule (see :func:`auto_beta`).
    n_strata : int, default=50
        Number of score strata under ``coverage``.
    sampler : {'draw', 'key'}, default='key'
        How a coverage stratum is sampled (see :func:`select_from_scores`); ``key`` keeps the
        selection stable when the features (and so the scores) move a little.
    dynamics : TrainingDynamics, optional
        Per-sample training dynamics for ``el2n``/``forgetting``/``aum``/``ccs``.
    method_params : dict, optional
        Hyper-parameters forwarded to the method.
    scores : array-like of shape (n_samples,), optional
        Per-sample scores of your own (higher = harder; e.g. from another tool, or a method's
        ``scores.npy`` to re-select at another rate or ``beta`` without recomputing it). No method
        runs; the budgets, strategy (default ``coverage``), ``beta`` and sampler are applied to
        them as to a method's, and the manifest names the method ``'precomputed'``. Cannot be
        combined with ``method``.

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
    t_start = time.perf_counter()
    rate = V.check_rate(rate)
    if scores is not None:
        if method is not None or method_params or dynamics is not None:
            raise V.TopodataInputError("give either scores= or a method (with its method_params/dynamics), not both")
        method, spec = "precomputed", None
    else:
        method = method or "topoprune"
        spec = get_method(method)
        method_params = dict(method_params or {})
    if spec is not None and spec.needs_features:
        # methods check their own neighbourhood sizes against the class sizes (one line, exit 2)
        x, y = V.check_features_labels(features, labels, min_per_class=spec.min_per_class)
    else:  # only the labels (and the length of the features, if given) matter
        y = V.check_labels(labels)
        x = np.asarray(features) if features is not None else np.empty((y.shape[0], 0))
        if x.shape[0] != y.shape[0]:
            y = V.check_labels(labels, n_samples=x.shape[0])
    if scores is not None:
        given = V.check_features(scores, name="scores", ndim=1, min_samples=0)
        if given.shape[0] != y.shape[0]:
            raise V.TopodataInputError(f"scores has {given.shape[0]} entries but labels {y.shape[0]}; one per sample")
    if y.shape[0] < 2:
        raise V.TopodataInputError(f"need at least 2 samples; got {y.shape[0]}")
    V.check_scalar(n_strata, "n_strata", int, min_val=1)
    strategy = strategy or (spec.default_strategy if spec is not None else "coverage")
    V.check_options(strategy, "strategy", STRATEGIES)
    if beta == "auto":
        beta_v = auto_beta(rate, *(spec.auto_beta if spec is not None else ()))
    else:
        beta_v = float(V.check_scalar(beta, "beta", (int, float), min_val=0.0, max_val=1.0, include_max=False))
    seed_repr = random_state if isinstance(random_state, (int, np.integer)) or random_state is None else "generator"
    rng = V.check_random_state(random_state)

    n = y.shape[0]
    keep = n_kept(n, rate)
    budgets = class_budgets(y, keep, balance=class_balance)

    t0 = time.perf_counter()
    if spec is None:
        out = MethodOutput(scores=given)
    else:
        out: MethodOutput = spec.load()(x, y, budgets=budgets, rng=rng, dynamics=dynamics, **method_params)
    t_method = time.perf_counter() - t0

    scores = np.asarray(out.scores, dtype=np.float64)
    if scores.shape != (n,):
        raise RuntimeError(f"method {method!r} returned scores of shape {scores.shape}; expected ({n},)")
    t0 = time.perf_counter()
    if out.indices is not None:
        indices = np.unique(np.asarray(out.indices, dtype=np.int64))
    else:
        indices = select_from_scores(
            scores, y, budgets, strategy=strategy, beta=beta_v, n_strata=n_strata, sampler=sampler, rng=rng
        )
    t_select = time.perf_counter() - t0
    _check_budgets(indices, y, budgets, method)

    classes, kept_counts = np.unique(y[indices], return_counts=True)
    timings = {f"{method}.{k}": float(v) for k, v in out.timings_s.items()}
    timings.update({"method": t_method, "select": t_select, "total": time.perf_counter() - t_start})
    params = {
        "class_balance": class_balance,
        "strategy": strategy if out.indices is None else "method",
        "beta": beta_v if out.indices is None and strategy == "coverage" else None,
        "n_strata": n_strata if out.indices is None and strategy == "coverage" else None,
        "sampler": sampler if out.indices is None and strategy == "coverage" else None,
        **out.params,
    }
    manifest = {
        "dataset": dataset,
        "n_total": int(n),
        "n_kept": int(indices.size),
        "rate": rate,
        "rounding": "n_kept = n_total - floor(rate * n_total)",
        "method": method,
        "seed": seed_repr,
        "params": _jsonable(params),
        "versions": versions(),
        "timings_s": timings,
        "class_counts_kept": {str(int(c)): int(k) for c, k in zip(classes, kept_counts)},
        "score_direction": "higher = harder / more atypical (NaN: no per-sample score)",
    }
    return SelectionResult(indices=indices, scores=scores, manifest=manifest, extras=out.extras)


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

    Every file is first written under a temporary name in ``out_dir`` and renamed only once all
    of them were written, so an error leaves no partial output behind. ``extra_files`` (e.g. PNG
    plots) join the same transaction.
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
        try:
            arr = np.loadtxt(path, dtype=np.int64, ndmin=1) if path.suffix == ".txt" else np.load(path)
        except (ValueError, OSError) as exc:
            raise V.TopodataInputError(f"{name}: cannot read {str(path)!r} ({exc})") from None
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
    ``indices.npy`` / ``indices.txt`` or a selection output folder.
    """
    from torch.utils.data import Subset

    n = len(dataset)
    idx = load_indices(indices, n_total=n, where=f"a dataset of length {n}")
    return Subset(dataset, idx.tolist())
