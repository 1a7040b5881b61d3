"""Array helpers shared by the topology modules: the numpy/torch shim and the input checks."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validation as V

# torch is imported only for torch inputs: the numpy path of the persistence core runs without it.

__all__ = ["is_torch", "ArrayNamespace", "as_weight_array", "check_points", "check_p_metric"]


def is_torch(x: Any) -> bool:
    """True for a ``torch.Tensor`` without importing torch when the caller never did."""
    return type(x).__module__.startswith("torch")


class ArrayNamespace:
    """The handful of array functions whose numpy and torch spellings differ.

    Everything else the algorithms use (fancy indexing, boolean assignment, arithmetic,
    comparisons) is spelt the same by both libraries.
    """

    def __init__(self, like: Any):
        self.torch = is_torch(like)
        if self.torch:
            import torch

            self._t = torch
            self.device = like.device

    def arange(self, n: int):
        if self.torch:
            return self._t.arange(n, device=self.device)
        return np.arange(n)

    def zeros(self, shape: tuple[int, ...], dtype: str):
        if self.torch:
            tdt = {"bool": self._t.bool, "int64": self._t.int64}[dtype]
            return self._t.zeros(shape, dtype=tdt, device=self.device)
        return np.zeros(shape, dtype=dtype)

    def zeros_float(self, shape: tuple[int, ...], like: Any):
        if self.torch:
            return like.new_zeros(shape)
        return np.zeros(shape, dtype=like.dtype)

    def where(self, cond, a, b):
        return self._t.where(cond, a, b) if self.torch else np.where(cond, a, b)

    def minimum(self, a, b):
        return self._t.minimum(a, b) if self.torch else np.minimum(a, b)

    def maximum(self, a, b):
        return self._t.maximum(a, b) if self.torch else np.maximum(a, b)

    def argmin(self, x, axis: int):
        # Both return the *first* minimal index, which makes ties deterministic.
        if self.torch:
            return self._t.argmin(x, dim=axis)
        return np.argmin(x, axis=axis)

    def stable_argsort(self, x, axis: int):
        if self.torch:
            return self._t.sort(x, dim=axis, stable=True).indices
        return np.argsort(x, axis=axis, kind="stable")

    def take_along(self, x, idx, axis: int):
        if self.torch:
            return self._t.gather(x, axis, idx)
        return np.take_along_axis(x, idx, axis=axis)

    def stack(self, xs, axis: int):
        return self._t.stack(xs, dim=axis) if self.torch else np.stack(xs, axis=axis)

    def concat(self, xs):
        if len(xs) == 1:
            return xs[0]
        return self._t.cat(xs) if self.torch else np.concatenate(xs)

    def subtract(self, a, b, out):
        return self._t.sub(a, b, out=out) if self.torch else np.subtract(a, b, out=out)

    def coordinate_slabs(self, x):
        """(B, n, d) → contiguous (d, B, n): one slab per coordinate."""
        if self.torch:
            return x.permute(2, 0, 1).contiguous()
        return np.ascontiguousarray(np.moveaxis(x, 2, 0))

    def finfo_max(self, x) -> float:
        return float(self._t.finfo(x.dtype).max if self.torch else np.finfo(x.dtype).max)

    def copy(self, x):
        return x.clone() if self.torch else x.copy()

    def detach(self, x):
        return x.detach() if self.torch else x

    def norm(self, x, p: float, axis: int):
        if self.torch:
            return self._t.linalg.vector_norm(x, ord=p, dim=axis)
        return np.linalg.norm(x, ord=p, axis=axis)

    def isnan_any(self, x) -> bool:
        return bool(self._t.isnan(x).any()) if self.torch else bool(np.isnan(x).any())


def as_weight_array(D: Any, name: str):
    """numpy/torch input → floating array of the same library; lists become float64 numpy."""
    if is_torch(D):
        if not (D.is_floating_point()):
            D = D.double()
        return D
    try:
        arr = np.asarray(D)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array or torch.Tensor; got {type(D).__name__} ({exc})") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a numeric array; got dtype {arr.dtype}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    return arr


def check_p_metric(p_metric: Any) -> float:
    """Exponent of the Minkowski metric: >= 1 or inf."""
    return V.check_exponent(p_metric, "p_metric")


def check_points(points: Any, name: str = "points"):
    """(n, d) or (B, n, d) finite floating points, numpy or torch, at least one point."""
    x = as_weight_array(points, name)
    if x.ndim not in (2, 3):
        raise V.TopodataInputError(
            f"{name} must have shape (n_points, n_dims) or (n_clouds, n_points, n_dims); got shape "
            f"{tuple(x.shape)}. Reshape a single 1-D cloud with x.reshape(-1, 1)"
        )
    if x.shape[-2] < 1:
        raise V.TopodataInputError(f"{name} must hold at least one point; got shape {tuple(x.shape)}")
    xp = ArrayNamespace(x)
    finite = bool(xp._t.isfinite(x).all()) if xp.torch else bool(np.isfinite(x).all())
    if not finite:
        raise V.TopodataInputError(f"{name} contains NaN or inf; clean or impute them first")
    return x
