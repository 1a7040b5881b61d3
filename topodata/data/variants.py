"""Stress variants of a dataset, named in its spec: ``BASE+label_noise=0.2``, ``BASE+near_dup=12000x5``.

The benchmark protocols of ``docs/algorithms.md#protocols`` need training sets with known label noise
and known near-duplicates. Writing them into the spec string (rather than as a separate option)
makes every cache that is keyed by the spec (embeddings, proxy runs, bench folders) tell the
variants apart for free. Each variant is seeded (``+seed=S``, default 0) and records its ground
truth in ``Dataset.info``; the test split is never changed.

- ``label_noise=P``: a fraction ``P`` of the training labels (exactly ``round(P n)``, chosen
  uniformly) is replaced by another class drawn uniformly. ``info['clean_labels']`` keeps the
  originals, ``info['flipped']`` the mask.
- ``near_dup=NxC``: ``N`` training images (class-stratified, seeded) each present ``C`` times,
  every copy shifted by a random integer offset in {-1, 0, 1}² (zero padding) and given Gaussian
  pixel noise of std 0.02, the rows in a seeded random order. ``info['dup_group']`` is the
  source image of each row (0..N-1).
- ``long_tail=R``: class ``c`` (the ``c``-th label in increasing order, of ``C``) keeps
  ``floor(n_max R^(-c/(C-1)))`` of its training rows (at most all, at least 1; ``n_max`` the largest
  class), chosen uniformly, the rows in their original order: the exponential profile of the
  long-tailed benchmarks (CIFAR-10-LT), the largest class ``R`` times the smallest.
  ``info['long_tail_sizes']`` has the sizes.
"""

from __future__ import annotations

import numpy as np

from .._meta import largest_remainder
from .._validation import TopodataInputError
from .dataset import Dataset

__all__ = ["split_variants", "apply_variants", "VARIANTS"]

VARIANTS = ("label_noise", "near_dup", "long_tail", "seed")
NEAR_DUP_NOISE = 0.02  # std of the pixel noise of each copy, images in [0, 1]


def split_variants(spec: str) -> tuple[str, dict[str, str]]:
    """``'fashion-mnist+label_noise=0.2'`` → ``('fashion-mnist', {'label_noise': '0.2'})``.

    Only ``+name=value`` tails with a known ``name`` are variants, so a ``+`` inside a path stays
    part of the path.
    """
    parts = spec.split("+")
    mods: dict[str, str] = {}
    while len(parts) > 1:
        name, eq, value = parts[-1].partition("=")
        if not eq or name.strip() not in VARIANTS:
            break
        if name.strip() in mods:
            raise TopodataInputError(f"dataset spec {spec!r} names {name.strip()!r} twice")
        mods[name.strip()] = value.strip()
        parts.pop()
    return "+".join(parts), dict(reversed(list(mods.items())))


def _number(spec: str, name: str, value: str, kind=float):
    try:
        out = kind(value)
    except ValueError:
        raise TopodataInputError(f"dataset spec {spec!r}: {name}={value!r} is not a {kind.__name__}") from None
    if not np.isfinite(out):
        raise TopodataInputError(f"dataset spec {spec!r}: {name} must be finite; got {value!r}")
    return out


def apply_variants(ds: Dataset, spec: str, mods: dict[str, str]) -> Dataset:
    """Apply the parsed variants of ``spec`` to the loaded base dataset ``ds`` (in the order given)."""
    if not mods:
        return ds
    extra = set(mods) - {"seed"}
    if not extra:
        raise TopodataInputError(
            f"dataset spec {spec!r}: +seed= alone changes nothing; add +label_noise=, +near_dup= or +long_tail=")
    seed = _number(spec, "seed", mods.get("seed", "0"), int)
    if seed < 0:
        raise TopodataInputError(f"dataset spec {spec!r}: seed must be >= 0; got {seed}")
    info = dict(getattr(ds, "info", None) or {})
    x, y = ds.x_train, ds.y_train
    for name, value in mods.items():
        if name == "near_dup":
            x, y, info = _near_duplicates(spec, x, y, value, seed, info)
        elif name == "label_noise":
            y, info = _label_noise(spec, y, ds.n_classes, value, seed, info)
        elif name == "long_tail":
            x, y, info = _long_tail(spec, x, y, value, seed, info)
    return Dataset(
        name=spec, x_train=x, y_train=y, x_test=ds.x_test, y_test=ds.y_test, n_classes=ds.n_classes,
        input_shape=ds.input_shape, classes=ds.classes, augment=ds.augment, source=ds.source, info=info,
    )


def _label_noise(spec, y, n_classes, value, seed, info):
    p = _number(spec, "label_noise", value)
    if not 0 < p < 1:
        raise TopodataInputError(f"dataset spec {spec!r}: label_noise must be in (0, 1); got {value}")
    if n_classes < 2:
        raise TopodataInputError(f"dataset spec {spec!r}: label noise needs at least 2 classes")
    rng = np.random.default_rng([seed, 0x6C6E])
    n = y.shape[0]
    flip = np.zeros(n, dtype=bool)
    flip[rng.choice(n, size=int(round(p * n)), replace=False)] = True
    # another class, uniformly: shift by 1..n_classes-1 (mod n_classes)
    shift = rng.integers(1, n_classes, size=n)
    noisy = np.where(flip, (y + shift) % n_classes, y).astype(np.int64)
    clean = info.get("clean_labels", y)
    return noisy, {**info, "clean_labels": clean, "flipped": noisy != clean}


def _near_duplicates(spec, x, y, value, seed, info):
    n_txt, sep, c_txt = value.lower().partition("x")
    if not sep:
        raise TopodataInputError(f"dataset spec {spec!r}: write near_dup as NxC, e.g. near_dup=12000x5")
    n_base, copies = _number(spec, "near_dup N", n_txt, int), _number(spec, "near_dup C", c_txt, int)
    if not 1 <= n_base <= y.shape[0] or copies < 1:
        raise TopodataInputError(
            f"dataset spec {spec!r}: near_dup needs 1 <= N <= {y.shape[0]} and C >= 1; got {value}"
        )
    if x.ndim != 4:
        raise TopodataInputError(f"dataset spec {spec!r}: near_dup needs images (N, C, H, W); got shape {x.shape}")
    rng = np.random.default_rng([seed, 0x6E64])
    # class-stratified base images, in proportion to the class sizes
    _, counts = np.unique(y, return_counts=True)
    base = _draw_per_class(y, largest_remainder(counts, n_base), rng)
    group = np.repeat(np.arange(base.size), copies)
    src = x[base][group]
    # one integer shift per copy, zero padding: pad by 1, then crop at offset (1 + dy, 1 + dx)
    h, w = x.shape[2:]
    padded = np.pad(src, ((0, 0), (0, 0), (1, 1), (1, 1)))
    dy, dx = rng.integers(-1, 2, size=(2, group.size))
    rows = (1 + dy)[:, None] + np.arange(h)[None, :]  # (m, h)
    cols = (1 + dx)[:, None] + np.arange(w)[None, :]  # (m, w)
    m = np.arange(group.size)[:, None, None]
    shifted = padded.transpose(0, 2, 3, 1)[m, rows[:, :, None], cols[:, None, :]].transpose(0, 3, 1, 2)
    noisy = np.clip(shifted + rng.normal(scale=NEAR_DUP_NOISE, size=shifted.shape), 0.0, 1.0)
    perm = rng.permutation(group.size)
    rows = base[group][perm]
    out = _take_rows(info, y, rows)
    out["dup_group"] = group[perm]
    return np.ascontiguousarray(noisy[perm], dtype=np.float32), y[rows], out


def _long_tail(spec, x, y, value, seed, info):
    ratio = _number(spec, "long_tail", value)
    if ratio <= 1:
        raise TopodataInputError(f"dataset spec {spec!r}: long_tail is the ratio of the largest class to the "
                                 f"smallest and must be > 1; got {value}")
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise TopodataInputError(f"dataset spec {spec!r}: long_tail needs at least 2 classes")
    rng = np.random.default_rng([seed, 0x6C74])
    pos = np.arange(classes.size) / (classes.size - 1)
    sizes = np.clip(np.floor(counts.max() * ratio ** -pos + 1e-9).astype(np.int64), 1, counts)
    keep = _draw_per_class(y, sizes, rng)
    out = _take_rows(info, y, keep)
    out["long_tail_sizes"] = {int(c): int(m) for c, m in zip(classes, sizes)}
    return x[keep], y[keep], out


def _draw_per_class(y: np.ndarray, sizes, rng: np.random.Generator) -> np.ndarray:
    """Sorted rows: ``sizes[j]`` drawn uniformly from the ``j``-th class (labels in increasing order).

    One random key per row, rows ranked by it within their class (one lexsort, no loop over samples).
    """
    order = np.lexsort((rng.random(y.shape[0]), y))
    _, counts = np.unique(y, return_counts=True)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.sort(np.concatenate([order[s:s + m] for s, m in zip(starts, sizes)]))


def _take_rows(info: dict, y: np.ndarray, rows: np.ndarray) -> dict:
    """``info`` with every per-row array (one entry per training row) taken at ``rows``."""
    return {k: v[rows] if isinstance(v, np.ndarray) and v.shape[:1] == y.shape else v for k, v in info.items()}
