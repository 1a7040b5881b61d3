"""Input checks shared by every public entry point.

All user-facing validation lives here (house rule 3): each check raises ``ValueError`` or
``TypeError`` naming the argument, what was received and how to fix it, so that the CLI can
print the message as one line and exit with status 2.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

__all__ = [
    "TopodataInputError",
    "check_features",
    "check_labels",
    "check_features_labels",
    "check_rate",
    "check_scalar",
    "check_random_state",
    "derive_seed",
    "as_float32",
    "check_options",
]


class TopodataInputError(ValueError):
    """Bad user input. The CLI prints ``str(err)`` on one line and exits with status 2."""


def as_float32(x: Any) -> np.ndarray:
    """Cast at the boundary: C-contiguous float32, as FAISS, ripser and torch want it."""
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def check_features(
    x: Any, *, name: str = "features", ndim: int = 2, min_samples: int = 1, dtype=np.float64
) -> np.ndarray:
    """Return ``x`` as a finite array of ``ndim`` dimensions, or raise naming ``name``."""
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array; got {type(x).__name__} ({exc})") from None
    if arr.ndim != ndim:
        hint = " Reshape your data, e.g. x.reshape(len(x), -1)." if ndim == 2 else ""
        raise TopodataInputError(
            f"{name} must be {ndim}-D; got shape {arr.shape}.{hint}"
        )
    if arr.shape[0] < min_samples:
        raise TopodataInputError(
            f"{name} has {arr.shape[0]} samples; at least {min_samples} are needed"
        )
    if arr.size and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=tuple(range(1, arr.ndim))).sum()) if arr.ndim > 1 else int(
            (~np.isfinite(arr)).sum()
        )
        raise TopodataInputError(
            f"{name} contains NaN or inf in {bad} sample(s); clean or impute them first"
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
        raise TypeError(f"{name} must be integer class ids; got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if n_samples is not None and arr.shape[0] != n_samples:
        raise TopodataInputError(
            f"{name} has length {arr.shape[0]} but features have {n_samples} samples; "
            "they must describe the same samples"
        )
    if arr.size and arr.min() < 0:
        raise TopodataInputError(f"{name} must be non-negative class ids; got min {arr.min()}")
    return arr


def check_features_labels(
    features: Any, labels: Any, *, min_per_class: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (features, labels) pair together; ``min_per_class`` guards neighbourhood sizes."""
    x = check_features(features, min_samples=2)
    y = check_labels(labels, n_samples=x.shape[0])
    classes, counts = np.unique(y, return_counts=True)
    small = classes[counts < min_per_class]
    if small.size:
        raise TopodataInputError(
            f"class {int(small[0])} has {int(counts[counts < min_per_class][0])} samples but the "
            f"method needs at least {min_per_class} per class (neighbourhood size); "
            "lower k or drop that class"
        )
    return x, y


def check_rate(rate: Any, *, name: str = "rate") -> float:
    """The pruning rate is the fraction *removed*, strictly inside (0, 1)."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1); got {rate!r}")
    rate = float(rate)
    if not (0.0 < rate < 1.0) or not np.isfinite(rate):
        raise TopodataInputError(
            f"{name} must be the fraction removed, strictly between 0 and 1; got {rate}"
        )
    return rate


def check_scalar(
    value: Any,
    name: str,
    target_type: type | tuple[type, ...],
    *,
    min_val: float | None = None,
    max_val: float | None = None,
    include_min: bool = True,
    include_max: bool = True,
):
    """Check a hyper-parameter's type and bounds, naming the parameter and the broken bound."""
    if isinstance(value, bool) and bool not in np.atleast_1d(target_type).tolist():
        raise TypeError(f"{name} must be {target_type}; got bool")
    if not isinstance(value, target_type):
        raise TypeError(f"{name} must be of type {target_type}; got {type(value).__name__} {value!r}")
    if min_val is not None:
        if value < min_val or (not include_min and value == min_val):
            op = ">=" if include_min else ">"
            raise TopodataInputError(f"{name} must be {op} {min_val}; got {value}")
    if max_val is not None:
        if value > max_val or (not include_max and value == max_val):
            op = "<=" if include_max else "<"
            raise TopodataInputError(f"{name} must be {op} {max_val}; got {value}")
    return value


def check_options(value: Any, name: str, options: tuple[str, ...] | list[str]) -> str:
    """Check that a string option is one of ``options``."""
    if value not in options:
        raise TopodataInputError(f"{name} must be one of {sorted(options)}; got {value!r}")
    return value


def check_random_state(random_state: Any) -> np.random.Generator:
    """Normalise ``None | int | np.random.Generator`` to a Generator (house rule 4)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, (numbers.Integral, np.integer)):
        if random_state is not None and int(random_state) < 0:
            raise TopodataInputError(f"seed must be a non-negative integer; got {random_state}")
        return np.random.default_rng(random_state)
    raise TypeError(
        f"random_state must be None, an int or a numpy Generator; got {type(random_state).__name__}"
    )


def derive_seed(rng: np.random.Generator) -> int:
    """An int seed for libraries that reject Generators (UMAP, sklearn, torch.Generator)."""
    return int(rng.integers(0, 2**31 - 1))


def warn(msg: str) -> None:
    """Warn about a likely mistake (stacklevel points at the caller's caller)."""
    warnings.warn(msg, UserWarning, stacklevel=3)
