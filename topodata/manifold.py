"""The global manifold: FAISS kNN of the L2-normalised features, handed to UMAP.

:func:`global_manifold` L2-normalises the features, builds their kNN graph with
:func:`topodata.neighbors.knn` (exact FAISS up to 100k samples), gives it to umap-learn as
``precomputed_knn`` so that UMAP skips its own NN-descent, embeds into a small dimension (8 by
default, not 2: the local topology stage needs room) and standardises each component.

UMAP equalises density, so TopoPrune re-injects it in its local stage rather than here; the
measured comparison of UMAP, densMAP and no UMAP is in ``docs/algorithms.md#global-manifold``.
:func:`enable_numba_cache` switches on numba's disk cache for umap's kernels (umap-learn declares
none), so a new process does not recompile them (``docs/algorithms.md#numba-compilation-cache``).
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from typing import Any

import numpy as np

from . import _validation as V
from ._io import user_cache_dir
from .neighbors import knn as _knn
from .neighbors import l2_normalize  # re-exported: the one row normaliser

# umap and numba are imported on use: they take seconds to import (start-up time of the CLI).

__all__ = [
    "global_manifold",
    "place_on_manifold",
    "place_batch",
    "PLACE_BATCH",
    "l2_normalize",
    "standardize_columns",
    "enable_numba_cache",
    "density_fixture",
    "METHODS",
]

METHODS = ("umap", "none")
INITS = ("spectral", "pca")  # UMAP's starting layout (umap-learn's init)

# umap's modules whose module-level numba kernels get the on-disk cache.
_UMAP_MODULES = ("umap.umap_", "umap.layouts", "umap.utils", "umap.distances", "umap.sparse", "umap.spectral")
_cache_enabled = False


def enable_numba_cache() -> str | None:
    """Persist umap's numba compilations on disk so that a second process does not recompile.

    Sets ``NUMBA_CACHE_DIR`` to ``<user_cache_dir()>/numba`` when unset (and numba's config if
    numba was already imported), imports umap, and calls ``enable_caching()`` on every module-level
    numba dispatcher of umap that has no cache yet. Idempotent; returns the cache directory, or
    None when disabled by ``TOPODATA_NUMBA_CACHE=0``.

    Numba keys each cache entry on the source file's path and modification time and on the CPU,
    so upgrading umap or moving to another machine recompiles once; writes are atomic, so
    concurrent processes are safe.
    """
    global _cache_enabled
    if os.environ.get("TOPODATA_NUMBA_CACHE", "1") == "0":
        return None
    if not os.environ.get("NUMBA_CACHE_DIR"):
        os.environ["NUMBA_CACHE_DIR"] = str(user_cache_dir() / "numba")
    cache_dir = os.environ["NUMBA_CACHE_DIR"]
    if _cache_enabled:
        return cache_dir
    from numba.core import config
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    if not config.CACHE_DIR:  # numba was imported before the variable was set
        config.CACHE_DIR = cache_dir
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap's import-time tqdm/tensorflow notices
        modules = [importlib.import_module(m) for m in _UMAP_MODULES]
    for module in modules:
        for obj in vars(module).values():
            if isinstance(obj, CPUDispatcher) and isinstance(obj._cache, NullCache):
                try:
                    obj.enable_caching()
                except RuntimeError:  # no writable cache location: compile in memory as before
                    return None
    _cache_enabled = True
    return cache_dir


def _torch_threads(restore: int | None = None) -> int | None:
    """Read (or restore) torch's intra-op thread count, if torch is already imported.

    numba's OpenMP threading layer, started by umap's parallel kernels, calls
    ``omp_set_num_threads`` on the libgomp it shares with torch's CPU wheel, silently raising a
    ``torch.set_num_threads(1)`` to the core count. Measured on two shared cores: the displacement
    stage then took 22-30 s instead of 1.9 s. :func:`global_manifold` restores the setting.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if restore is not None and torch.get_num_threads() != restore:
        torch.set_num_threads(restore)
    return torch.get_num_threads()


def standardize_columns(z: np.ndarray) -> np.ndarray:
    """Zero mean and unit variance per column (constant columns are only centred), float32."""
    z = np.asarray(z, dtype=np.float64)
    std = z.std(axis=0)
    return V.as_float32((z - z.mean(axis=0)) / np.where(std > 0, std, 1.0))


def _check_knn(knn_graph: Any, n: int, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate a precomputed ``(indices, dists)`` pair and cut it to ``n_neighbors`` columns."""
    if not (isinstance(knn_graph, (tuple, list)) and len(knn_graph) == 2):
        raise V.TopodataInputError(
            "knn must be the (indices, dists) pair returned by topodata.neighbors.knn; "
            f"got {type(knn_graph).__name__}"
        )
    idx = np.asarray(knn_graph[0])
    dist = np.asarray(knn_graph[1], dtype=np.float32)
    if idx.ndim != 2 or idx.shape != dist.shape or idx.shape[0] != n:
        raise V.TopodataInputError(
            f"knn indices and dists must both have shape ({n}, k); got {idx.shape} and {dist.shape}"
        )
    if idx.shape[1] < n_neighbors:
        raise V.TopodataInputError(
            f"knn has {idx.shape[1]} neighbours per sample but n_neighbors={n_neighbors}; "
            "compute it with at least n_neighbors columns or lower n_neighbors"
        )
    if not np.array_equal(idx[:, 0], np.arange(n)):
        raise V.TopodataInputError(
            "knn indices must hold each sample as its own first neighbour (column 0), "
            "as topodata.neighbors.knn returns them"
        )
    # copies: UMAP writes -1/inf into the arrays it is given
    return (
        np.array(idx[:, :n_neighbors], dtype=np.int64, order="C"),
        np.array(dist[:, :n_neighbors], dtype=np.float32, order="C"),
    )


def global_manifold(
    features: Any,
    *,
    method: str = "umap",
    n_components: int | None = 8,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    densmap: bool = False,
    dens_lambda: float = 2.0,
    n_epochs: int | None = None,
    knn: tuple[np.ndarray, np.ndarray] | None = None,
    knn_method: str = "auto",
    device: str = "auto",
    random_state: Any = 0,
    standardize: bool = True,
    fit_size: int | None = None,
    init: str = "spectral",
) -> np.ndarray:
    """Embed L2-normalised features into a small-dimensional UMAP manifold.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Latent features (e.g. penultimate activations); each row is L2-normalised first, so that
        the manifold reflects directions, as penultimate features are compared in practice.
    method : {'umap', 'none'}, default='umap'
        ``'none'`` skips UMAP and returns the normalised features (standardised if asked): the
        ablation without a global stage. ``n_components=None`` means the same.
    n_components : int or None, default=8
        Manifold dimension. Small but not 2: 2-d crowds neighbourhoods and invents loops.
    n_neighbors : int, default=15
        kNN graph size for UMAP (including the point itself, umap-learn's convention).
    min_dist : float, default=0.1
        UMAP's minimum distance between embedded points.
    densmap : bool, default=False
        Use umap-learn's density-preserving objective (densMAP); see docs/algorithms.md#global-manifold for
        how each option keeps density. Costs one numba compilation per call.
    dens_lambda : float, default=2.0
        Weight of densMAP's density term.
    n_epochs : int or None, default=None
        UMAP's optimisation epochs; None = umap-learn's default (500 below 10,000 samples, else
        200).
    knn : (indices, dists) or None, default=None
        A precomputed kNN graph **of the L2-normalised features** from
        :func:`topodata.neighbors.knn` with at least ``n_neighbors`` columns; None computes it.
    knn_method, device : str
        Passed to :func:`topodata.neighbors.knn` when ``knn`` is None.
    random_state : None, int or numpy Generator, default=0
        An int seed is derived for UMAP, which then runs single-threaded and is deterministic
        (same input and seed ⇒ same embedding, across processes). None still derives a seed
        (fresh entropy), so UMAP is never run in its non-deterministic parallel mode.
    standardize : bool, default=True
        Centre each UMAP component and scale it to unit variance, so that the local topology stage
        sees one scale whatever UMAP's spread. Not applied with ``method='none'``: giving raw feature
        columns unit variance would blow up near-constant (dead) dimensions.
    fit_size : int or None, default=None
        Fit UMAP on a seeded sample of at most this many rows (its own kNN graph; ``knn`` is then
        not used) and place the others with :func:`place_on_manifold` in batches: UMAP's cost and
        memory stay those of the sample, and the rest costs one kNN query per row. None: fit all.
    init : {'spectral', 'pca'}, default='spectral'
        UMAP's starting layout: the graph Laplacian's eigenvectors (umap-learn's default), or the
        first principal components of the features (a faster start, another layout).

    Returns
    -------
    ndarray of shape (n_samples, n_components), float32
        The L2-normalised features, (n_samples, n_features), for ``method='none'``.

    Raises
    ------
    TopodataInputError
        NaN/inf features, ``n_neighbors`` not below ``n_samples``, a malformed ``knn`` or an
        unknown option.

    Examples
    --------
    >>> import numpy as np
    >>> from topodata.manifold import global_manifold
    >>> x = np.random.default_rng(0).normal(size=(50, 6))
    >>> global_manifold(x, method="none").shape
    (50, 6)
    """
    x = V.check_features(features, min_samples=2)
    n = x.shape[0]
    V.check_options(method, "method", METHODS)
    if n_components is None:
        method = "none"
    rng = V.check_random_state(random_state)
    knn_seed, umap_seed = V.derive_seed(rng), V.derive_seed(rng)
    f = l2_normalize(x)
    if method == "none":  # features as they are: unit-variance columns would amplify dead dimensions
        return f

    V.check_scalar(n_components, "n_components", (int, np.integer), min_val=1)
    V.check_scalar(n_neighbors, "n_neighbors", (int, np.integer), min_val=2, max_val=n - 1)
    V.check_scalar(min_dist, "min_dist", (int, float), min_val=0.0)
    V.check_scalar(densmap, "densmap", bool)
    V.check_options(init, "init", INITS)
    V.check_scalar(dens_lambda, "dens_lambda", (int, float), min_val=0.0)
    if n_epochs is not None:
        V.check_scalar(n_epochs, "n_epochs", (int, np.integer), min_val=1)
    if n_components >= n - 1:
        raise V.TopodataInputError(
            f"n_components={n_components} needs more than {n_components + 1} samples; got {n}"
        )
    if fit_size is not None:
        V.check_scalar(fit_size, "fit_size", (int, np.integer), min_val=max(int(n_components) + 2, int(n_neighbors) + 1))
    if fit_size is not None and n > fit_size:
        # a seeded sample carries the fit; its own kNN graph (the given one is of all rows)
        sample = np.sort(np.random.default_rng(V.derive_seed(rng)).choice(n, size=int(fit_size), replace=False))
        rest = np.setdiff1d(np.arange(n), sample)
        f_fit = f[sample]
        idx, dist = _knn(f_fit, int(n_neighbors), method=knn_method, device=device, random_state=knn_seed)
    else:
        sample = rest = None
        f_fit = f
        if knn is None:
            idx, dist = _knn(f, int(n_neighbors), method=knn_method, device=device, random_state=knn_seed)
        else:
            idx, dist = _check_knn(knn, n, int(n_neighbors))

    enable_numba_cache()
    import umap

    reducer = umap.UMAP(
        n_components=int(n_components),
        n_neighbors=int(n_neighbors),
        min_dist=float(min_dist),
        metric="euclidean",
        precomputed_knn=(idx, dist),
        densmap=densmap,
        dens_lambda=float(dens_lambda),
        n_epochs=None if n_epochs is None else int(n_epochs),
        random_state=umap_seed,
        init=init,
        n_jobs=1,
        verbose=False,
    )
    torch_threads = _torch_threads()
    try:
        with warnings.catch_warnings():
            # we never call transform(), so the missing NN-descent search index does not matter
            warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
            z = reducer.fit_transform(f_fit)
    finally:
        _torch_threads(torch_threads)
    z = np.asarray(z, dtype=np.float32)
    if sample is not None:
        z_all = np.empty((n, z.shape[1]), dtype=np.float32)
        z_all[sample] = z
        z_all[rest] = place_on_manifold(f_fit, z, f[rest], n_neighbors=int(n_neighbors), knn_method=knn_method,
                                        random_state=knn_seed, normalize=False)
        z = z_all
    return standardize_columns(z) if standardize else V.as_float32(z)


#: Rows placed per batch by :func:`place_on_manifold` (one task each under the Ray engine).
PLACE_BATCH = 65_536


def place_on_manifold(
    ref_features: Any,
    ref_embedding: Any,
    features: Any,
    *,
    n_neighbors: int = 15,
    knn_method: str = "auto",
    random_state: Any = 0,
    batch_size: int = PLACE_BATCH,
    normalize: bool = True,
) -> np.ndarray:
    """Coordinates for new rows on a manifold fitted to ``ref_features``: UMAP's transform, first step.

    Each row gets the membership-weighted mean of the coordinates of its ``n_neighbors`` nearest
    reference rows, with UMAP's own weights (``smooth_knn_dist`` and
    ``compute_membership_strengths`` of umap-learn, as its ``transform`` initialises new points).
    umap-learn's ``transform`` itself cannot run here: a model fitted with ``precomputed_knn`` has
    no search index (it raises ``NotImplementedError``), and its 30-epoch refinement would cost more
    than the fit at a million rows. The neighbours come from one FAISS index of the reference rows
    (:class:`topodata.neighbors.KnnIndex`), queried in batches of ``batch_size`` rows: memory grows
    with the batch, not the data, and the batches run as tasks of the current engine
    (:mod:`topodata._engine`), so in-process and Ray give the same coordinates.

    Parameters
    ----------
    ref_features : array-like of shape (n_ref, n_features)
    ref_embedding : array-like of shape (n_ref, n_components)
        The fitted manifold's coordinates of the reference rows (not standardised).
    features : array-like of shape (n_samples, n_features)
        Rows to place.
    n_neighbors : int, default=15
    knn_method : {'auto', 'exact', 'ivf', 'hnsw'}, default='auto'
        ``'auto'``: :func:`topodata.neighbors.auto_method` for this many rows on this reference.
    random_state : None, int or numpy Generator, default=0
        Seeds an IVF index.
    batch_size : int, default=65536
    normalize : bool, default=True
        L2-normalise both feature arrays first (as :func:`global_manifold` does).

    Returns
    -------
    ndarray of shape (n_samples, n_components), float32

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.random.default_rng(0).normal(size=(100, 5)); emb = ref[:, :2]
    >>> place_on_manifold(ref, emb, ref[:3] + 0.01).shape
    (3, 2)
    """
    from ._engine import map_tasks, share
    from .neighbors import KnnIndex

    ref = V.check_features(ref_features, name="ref_features", dtype=np.float32, min_samples=2)
    emb = V.check_features(ref_embedding, name="ref_embedding", dtype=np.float32)
    x = V.check_features(features, name="features", dtype=np.float32, min_samples=0)
    if emb.shape[0] != ref.shape[0]:
        raise V.TopodataInputError(f"ref_embedding has {emb.shape[0]} rows but ref_features {ref.shape[0]}")
    if x.shape[1] != ref.shape[1]:
        raise V.TopodataInputError(f"features have {x.shape[1]} columns but ref_features {ref.shape[1]}")
    V.check_scalar(n_neighbors, "n_neighbors", (int, np.integer), min_val=1, max_val=ref.shape[0])
    V.check_scalar(batch_size, "batch_size", (int, np.integer), min_val=1)
    if normalize:
        ref, x = l2_normalize(ref), l2_normalize(x)
    seed = V.derive_seed(V.check_random_state(random_state))
    # 'auto' weighs the queries too: placing many rows on a 100,000-row sample is IVF (bounded scan)
    index = share(KnnIndex(knn_method, random_state=seed, n_queries=x.shape[0]).fit(ref))
    emb_ref = share(V.as_float32(emb))
    starts = range(0, x.shape[0], int(batch_size))
    parts = map_tasks(place_batch, [(index, emb_ref, x[s : s + int(batch_size)], int(n_neighbors)) for s in starts])
    return np.concatenate(parts) if parts else np.empty((0, emb.shape[1]), dtype=np.float32)


def place_batch(index: Any, ref_embedding: np.ndarray, x: np.ndarray, n_neighbors: int) -> np.ndarray:
    """One batch of :func:`place_on_manifold` (a module-level function: a Ray task runs it)."""
    enable_numba_cache()
    from umap.umap_ import compute_membership_strengths, smooth_knn_dist

    idx, dist = index.query(x, n_neighbors)
    torch_threads = _torch_threads()
    try:
        # UMAP's transform: local connectivity 1 - 1 = 0 for new points, bipartite memberships
        sigmas, rhos = smooth_knn_dist(dist, float(n_neighbors), local_connectivity=0.0)
        _, _, vals, _ = compute_membership_strengths(idx.astype(np.int32), dist, sigmas, rhos, bipartite=True)
    finally:
        _torch_threads(torch_threads)
    w = np.asarray(vals, dtype=np.float64).reshape(idx.shape)
    total = w.sum(axis=1, keepdims=True)
    w = np.where(total > 0, w / np.where(total > 0, total, 1.0), 1.0 / idx.shape[1])
    return V.as_float32(np.einsum("nk,nkc->nc", w, ref_embedding[idx].astype(np.float64)))


def density_fixture(
    *,
    n_classes: int = 3,
    n_blob: int = 300,
    n_circle: int = 100,
    n_features: int = 16,
    radius: float = 3.0,
    noise: float = 0.05,
    random_state: Any = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The density check of docs/algorithms.md#global-manifold: per class a dense Gaussian blob and a sparse noisy circle.

    Class ``c`` has centre ``μ_c`` (random direction, norm 10), ``n_blob`` points
    ``μ_c + N(0, noise² I)`` and ``n_circle`` points on a circle of radius ``radius`` in a random
    2-plane through ``μ_c``, plus ``N(0, noise² I)`` noise, in ``n_features`` dimensions. With the
    defaults, after L2-normalisation the circle's mean 15-NN distance is ~4x the blob's. A
    density-aware score should rank the circle (structure) above the blob (redundant interior).

    Returns
    -------
    x : ndarray of shape (n_classes * (n_blob + n_circle), n_features)
    y : ndarray of int64, the class of each row
    on_circle : ndarray of bool, True for circle points
    """
    rng = V.check_random_state(random_state)
    xs, ys, kinds = [], [], []
    for c in range(n_classes):
        mu = rng.normal(size=n_features)
        mu *= 10.0 / np.linalg.norm(mu)
        blob = mu + noise * rng.normal(size=(n_blob, n_features))
        plane, _ = np.linalg.qr(rng.normal(size=(n_features, 2)))
        t = rng.uniform(0.0, 2 * np.pi, n_circle)
        ring = mu + radius * (np.cos(t)[:, None] * plane[:, 0] + np.sin(t)[:, None] * plane[:, 1])
        ring += noise * rng.normal(size=(n_circle, n_features))
        xs += [blob, ring]
        ys.append(np.full(n_blob + n_circle, c, dtype=np.int64))
        kinds += [np.zeros(n_blob, bool), np.ones(n_circle, bool)]
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(kinds)
