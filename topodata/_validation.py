"""Input checks shared by every public entry point.

All user-facing validation lives here (docs/design.md#validation-and-errors): each check raises
:class:`TopodataInputError` (a ``ValueError``) or :class:`TopodataTypeError` (also a ``TypeError``)
naming the argument, what was received and how to fix it. The CLI prints exactly these (and
file-system errors) as one line with exit status 2; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

__all__ = [
    "TopodataInputError",
    "TopodataTypeError",
    "check_features",
    "check_labels",
    "encode_labels",
    "check_features_labels",
    "check_rate",
    "check_budgets",
    "check_scalar",
    "check_random_state",
    "derive_seed",
    "as_float32",
    "check_options",
]


class TopodataInputError(ValueError):
    """Bad user input. The CLI prints ``str(err)`` on one line and exits with status 2."""


class TopodataTypeError(TopodataInputError, TypeError):
    """Bad user input of the wrong type: a ``TypeError`` for API callers, one line for the CLI."""


#: Largest feature magnitude accepted: squared distances of larger values overflow float64.
MAX_ABS_FEATURE = 1e150


def as_float32(x: Any) -> np.ndarray:
    """Cast at the boundary: C-contiguous float32, as FAISS, ripser and torch want it."""
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def check_features(
    x: Any, *, name: str = "features", ndim: int = 2, min_samples: int = 1, dtype=np.float64,
    min_features: int = 1,
) -> np.ndarray:
    """Return ``x`` as a finite real array of ``ndim`` dimensions, or raise naming ``name``.

    Refused: complex values (the imaginary part would be dropped silently), a 2-D array with
    fewer than ``min_features`` columns, fewer than ``min_samples`` rows, NaN/inf, and
    magnitudes above ``MAX_ABS_FEATURE`` (their squared distances overflow).
    """
    raw = x if isinstance(x, np.ndarray) else None
    if raw is None:
        try:
            raw = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TopodataTypeError(f"{name} must be a numeric array; got {type(x).__name__} ({exc})") from None
    if raw.dtype.kind == "c":
        raise TopodataTypeError(f"{name} must be real; got complex dtype {raw.dtype}. Pass x.real or np.abs(x)")
    if raw.dtype.kind not in "biuf":
        try:
            arr = np.asarray(raw, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise TopodataTypeError(
                f"{name} must be a numeric array; got {type(x).__name__} of dtype {raw.dtype} ({exc})"
            ) from None
    else:
        arr = np.asarray(raw, dtype=dtype)
    if arr.ndim != ndim:
        hint = " Reshape your data, e.g. x.reshape(len(x), -1)." if ndim == 2 else ""
        raise TopodataInputError(
            f"{name} must be {ndim}-D; got shape {arr.shape}.{hint}"
        )
    if arr.shape[0] < min_samples:
        raise TopodataInputError(
            f"{name} has {arr.shape[0]} samples; at least {min_samples} are needed"
        )
    if ndim == 2 and arr.shape[1] < min_features:
        raise TopodataInputError(
            f"{name} has {arr.shape[1]} feature column(s); at least {min_features} needed"
        )
    if arr.size and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=tuple(range(1, arr.ndim))).sum()) if arr.ndim > 1 else int(
            (~np.isfinite(arr)).sum()
        )
        raise TopodataInputError(
            f"{name} contains NaN or inf in {bad} sample(s); clean or impute them first"
        )
    if arr.size and float(np.abs(arr).max()) > MAX_ABS_FEATURE:
        raise TopodataInputError(
            f"{name} has values up to {float(np.abs(arr).max()):.3g}; above {MAX_ABS_FEATURE:g} squared "
            "distances overflow. Rescale them (e.g. standardise)"
        )
    return arr


def check_labels(y: Any, *, n_samples: int | None = None, name: str = "labels") -> np.ndarray:
    """Return integer labels of shape (n_samples,), or raise naming the length mismatch."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise TopodataInputError(f"{name} must be 1-D; got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.all(arr == np.round(arr)):
            raise TopodataInputError(f"{name} must be integer class ids; got non-integer floats")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iub":
        raise TopodataTypeError(f"{name} must be integer class ids; got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if n_samples is not None and arr.shape[0] != n_samples:
        raise TopodataInputError(
            f"{name} has length {arr.shape[0]} but features have {n_samples} samples; "
            "they must describe the same samples"
        )
    if arr.size and arr.min() < 0:
        raise TopodataInputError(f"{name} must be non-negative class ids; got min {arr.min()}")
    return arr


def encode_labels(y: Any, *, name: str = "labels") -> tuple[Any, np.ndarray | None]:
    """Labels as :func:`check_labels` takes them, and the class names when they had to be encoded.

    Non-negative integer (or integral float, or bool) labels pass through unchanged with names
    ``None``. Any other sortable labels (strings, negative integers, an object array of either, as
    a pandas column gives) become ids in sorted order, ``names[id]`` being the original label,
    as scikit-learn's ``LabelEncoder`` numbers them.
    """
    arr = np.asarray(y)
    if arr.dtype.kind == "O" and arr.ndim == 1:
        is_str = np.frompyfunc(lambda v: isinstance(v, str), 1, 1)(arr).astype(bool)
        arr = np.asarray(arr.tolist())  # infers str or int from the elements
        # mixed str and int: numpy would turn 1 and '1' into one class
        if arr.dtype.kind == "O" or (is_str.size and is_str.any() != is_str.all()):
            raise TopodataTypeError(f"{name} must be class ids or class names of one type; got mixed objects")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    encode = arr.dtype.kind in "US" or (arr.dtype.kind == "i" and arr.size and arr.min() < 0)
    if arr.ndim != 1 or not encode:
        return y, None
    names, ids = np.unique(arr, return_inverse=True)
    return ids.astype(np.int64), names


def check_features_labels(
    features: Any, labels: Any, *, min_per_class: int = 1, names: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (features, labels) pair together; ``min_per_class`` guards neighbourhood sizes.

    ``names``: the class names of encoded labels (:func:`encode_labels`), for the error message."""
    x = check_features(features, min_samples=2)
    y = check_labels(labels, n_samples=x.shape[0])
    classes, counts = np.unique(y, return_counts=True)
    small = classes[counts < min_per_class]
    if small.size:
        name = int(small[0]) if names is None else repr(names[small[0]].item())
        raise TopodataInputError(
            f"class {name} has {int(counts[counts < min_per_class][0])} samples but the "
            f"method needs at least {min_per_class} per class (neighbourhood size); "
            "lower k or drop that class"
        )
    return x, y


def check_rate(rate: Any, *, name: str = "rate") -> float:
    """The pruning rate is the fraction *removed*, strictly inside (0, 1)."""
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real):
        raise TopodataTypeError(f"{name} must be a number in (0, 1); got {rate!r}")
    rate = float(rate)
    if not (0.0 < rate < 1.0) or not np.isfinite(rate):
        raise TopodataInputError(
            f"{name} must be the fraction removed, strictly between 0 and 1; got {rate}"
        )
    return rate


def check_budgets(budgets: dict[int, int], rate: float, class_sizes: dict[int, int] | None = None) -> None:
    """Refuse a rate that keeps no sample at all, or none of some class.

    ``budgets`` are the per-class kept counts; ``class_sizes`` (optional) names the classes'
    sizes in the message.
    """
    total = sum(budgets.values())
    if total == 0:
        n = sum(class_sizes.values()) if class_sizes else None
        of = f" of {n} samples" if n is not None else ""
        raise TopodataInputError(f"rate {rate} keeps 0{of}; lower the rate so that at least one sample is kept")
    empty = [c for c, b in budgets.items() if b == 0]
    if empty:
        size = f" ({class_sizes[empty[0]]} samples)" if class_sizes and empty[0] in class_sizes else ""
        raise TopodataInputError(
            f"rate {rate} keeps no sample of class {empty[0]}{size}"
            + (f" nor of {len(empty) - 1} other class(es)" if len(empty) > 1 else "")
            + "; lower the rate, use class_balance='balanced', or drop the class"
        )


def check_scalar(
    value: Any,
    name: str,
    target_type: type | tuple[type, ...],
    *,
    min_val: float | None = None,
    max_val: float | None = None,
    include_min: bool = True,
    include_max: bool = True,
    allow_nonfinite: bool = False,
):
    """Check a hyper-parameter's type and bounds, naming the parameter and the broken bound.

    numpy integers count as ``int`` and numpy floats as ``float``; NaN and ±inf are refused
    unless ``allow_nonfinite``. Returns the value (a numpy scalar converted to ``int``/``float``
    where ``int``/``float`` was asked for).
    """
    types = tuple(target_type) if isinstance(target_type, tuple) else (target_type,)
    if isinstance(value, (bool, np.bool_)):
        if bool not in types:
            raise TopodataTypeError(f"{name} must be of type {_type_names(types)}; got bool {value!r}")
        return bool(value)
    if isinstance(value, np.integer) and any(t in (int, numbers.Integral) for t in types):
        value = int(value)
    elif isinstance(value, np.floating) and float in types:
        value = float(value)
    if not isinstance(value, types):
        raise TopodataTypeError(f"{name} must be of type {_type_names(types)}; got {type(value).__name__} {value!r}")
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and not allow_nonfinite:
        if not np.isfinite(float(value)):
            raise TopodataInputError(f"{name} must be a finite number; got {value}")
    if min_val is not None:
        if value < min_val or (not include_min and value == min_val):
            op = ">=" if include_min else ">"
            raise TopodataInputError(f"{name} must be {op} {min_val}; got {value}")
    if max_val is not None:
        if value > max_val or (not include_max and value == max_val):
            op = "<=" if include_max else "<"
            raise TopodataInputError(f"{name} must be {op} {max_val}; got {value}")
    return value


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join(getattr(t, "__name__", str(t)) for t in types)


def check_options(value: Any, name: str, options: tuple[str, ...] | list[str]) -> str:
    """Check that a string option is one of ``options``."""
    try:
        known = not isinstance(value, np.ndarray) and value in options
    except (TypeError, ValueError):  # an object whose comparison fails
        known = False
    if not known:
        raise TopodataInputError(f"{name} must be one of {sorted(options)}; got {value!r}")
    return value


def check_random_state(random_state: Any) -> np.random.Generator:
    """Normalise ``None | int | np.random.Generator`` to a Generator (docs/design.md#randomness)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, (bool, np.bool_)):
        raise TopodataTypeError(f"random_state must be None, an int or a numpy Generator; got bool {random_state!r}")
    if random_state is None or isinstance(random_state, (numbers.Integral, np.integer)):
        if random_state is not None and int(random_state) < 0:
            raise TopodataInputError(f"seed must be a non-negative integer; got {random_state}")
        return np.random.default_rng(random_state)
    raise TopodataTypeError(
        f"random_state must be None, an int or a numpy Generator; got {type(random_state).__name__}"
    )


def derive_seed(rng: np.random.Generator) -> int:
    """An int seed for libraries that reject Generators (UMAP, sklearn, torch.Generator)."""
    return int(rng.integers(0, 2**31 - 1))


def warn(msg: str) -> None:
    """Warn about a likely mistake (stacklevel points at the caller's caller)."""
    warnings.warn(msg, UserWarning, stacklevel=3)


def check_exponent(value: Any, name: str = "p", *, min_val: float = 1.0, include_min: bool = True,
                   allow_inf: bool = True) -> float:
    """Exponent of a p-norm or a Minkowski metric: a real number >= ``min_val`` (``>`` when not
    ``include_min``), ``inf`` when ``allow_inf``, never NaN. Returns it as a float."""
    value = check_scalar(value, name, numbers.Real, min_val=min_val, include_min=include_min,
                         allow_nonfinite=allow_inf)
    if np.isnan(value):
        raise TopodataInputError(f"{name} must be a number >= {min_val:g}{' or inf' if allow_inf else ''}; got nan")
    return float(value)


def check_n_jobs(n_jobs: Any) -> int:
    """Worker processes as joblib reads them: a positive int, or -1 for all cores."""
    n_jobs = check_scalar(n_jobs, "n_jobs", numbers.Integral)
    if n_jobs == 0 or n_jobs < -1:
        raise TopodataInputError(f"n_jobs must be a positive number of processes or -1; got {n_jobs}")
    return int(n_jobs)
