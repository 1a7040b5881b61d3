"""k-nearest-neighbour graphs with FAISS: the one kNN contract every stage reuses (docs/design.md#the-knn-contract).

Contract of :func:`knn`
-----------------------
``(indices, dists)``, both of shape ``(n_samples, n_neighbors)``:

- ``indices`` int64, ``dists`` float32;
- each point is its **own first neighbour** (column 0, distance exactly 0), as umap-learn's
  ``precomputed_knn`` expects, so ``n_neighbors`` counts the point itself;
- distances are **plain (not squared) L2**. FAISS's ``IndexFlatL2``/``IVF``/``HNSW`` return
  *squared* L2; we take the square root (after clipping the tiny negative values that float32
  cancellation produces) so the numbers can be compared with scipy/sklearn and fed to UMAP;
- rows are sorted by increasing distance.

Backends (``device``)
---------------------
- a GPU FAISS index when the installed faiss has GPUs (``faiss-gpu``);
- else ``torch.cdist`` + ``topk`` on CUDA, in row blocks, when torch sees a GPU;
- else CPU FAISS.

Index types (``method``)
------------------------
``'exact'`` is ``IndexFlatL2`` (brute force, BLAS). ``'ivf'`` (``IndexIVFFlat``, k-means coarse
quantiser, seeded) and ``'hnsw'`` (``IndexHNSWFlat``) are approximate; ``'auto'`` uses the exact
index up to :data:`EXACT_MAX_SAMPLES` samples (:data:`EXACT_MAX_SAMPLES_LOW_DIM` for at most
:data:`LOW_DIM` features) and IVF above it; for queries of other rows (:class:`KnnIndex`) it
weighs queries × reference rows the same way (:func:`auto_method`).

Non-deterministic backends: HNSW construction with several OpenMP threads may insert in a
thread-dependent order, so ``'hnsw'`` can differ between runs; ``'exact'`` and seeded ``'ivf'``
are deterministic (up to ties between equal distances).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _validation as V
from ._threads import canonical_threads

# faiss and torch are imported on use: `import topodata.neighbors` stays numpy-only (start-up time).

__all__ = [
    "knn",
    "auto_method",
    "restrict_knn",
    "KnnIndex",
    "IVF_SCAN",
    "SEARCH_BLOCK",
    "EXACT_MAX_SAMPLES",
    "EXACT_MAX_SAMPLES_LOW_DIM",
    "LOW_DIM",
    "METHODS",
    "DEVICES",
    "METRICS",
]

#: ``method='auto'`` is exact up to this many samples (IVF above), except in low dimension.
#: Brute force costs O(n² d) but runs as BLAS; measured on two CPU cores at 60k points: 8-d exact
#: 8.4 s vs IVF 2.5 s (recall 1.0); 64-d exact 7.9 s vs IVF 8.2 s (recall 0.99997); 128-d exact
#: 15.4 s vs IVF 10.7 s (recall 0.99999). Above ~10^5 points the quadratic term dominates.
EXACT_MAX_SAMPLES = 100_000
#: ... and IVF already above this many samples when ``n_features <= LOW_DIM`` (the GEMM of brute
#: force is memory-bound there: its inner dimension is tiny).
EXACT_MAX_SAMPLES_LOW_DIM = 20_000
LOW_DIM = 16

METHODS = ("auto", "exact", "ivf", "hnsw")
DEVICES = ("auto", "cpu", "cuda")
METRICS = ("euclidean", "cosine")

#: IVF probes enough lists to scan about this many points per query (see ``_ivf_nprobe``).
IVF_SCAN = 8192
#: Under a distributed engine (Ray) an IVF graph of more rows than this is searched in blocks of
#: this many rows, one task each; in-process it is one FAISS call (FAISS threads it).
SEARCH_BLOCK = 131_072
_HNSW_M = 32  # graph degree; efSearch is set from k below
_TORCH_BLOCK = 4096  # query rows per torch.cdist block on CUDA (memory ~ block * n * 4 bytes)


def auto_method(n_ref: int, n_features: int, n_queries: int | None = None) -> str:
    """``'exact'`` or ``'ivf'``: what ``method='auto'`` uses for ``n_queries`` queries of ``n_ref`` rows.

    Exact while the brute-force work ``n_queries × n_ref`` is at most that of the kNN graph of
    :data:`EXACT_MAX_SAMPLES` rows (:data:`EXACT_MAX_SAMPLES_LOW_DIM` in at most :data:`LOW_DIM`
    features), IVF above: for a graph (``n_queries = n_ref``, the default) this is
    ``n_ref <= EXACT_MAX_SAMPLES``; placing a million rows on a 100,000-row sample is IVF, a few
    rows are searched exactly (an IVF index would cost more to build than they do to scan).

    >>> auto_method(60_000, 128), auto_method(250_000, 128), auto_method(100_000, 128, n_queries=900_000)
    ('exact', 'ivf', 'ivf')
    >>> auto_method(250_000, 128, n_queries=1_000)
    'exact'
    """
    limit = EXACT_MAX_SAMPLES_LOW_DIM if n_features <= LOW_DIM else EXACT_MAX_SAMPLES
    q = n_ref if n_queries is None else n_queries
    return "exact" if n_ref * q <= limit * limit else "ivf"


def knn(
    x: Any,
    n_neighbors: int,
    *,
    method: str = "auto",
    device: str = "auto",
    random_state: Any = None,
    metric: str = "euclidean",
) -> tuple[np.ndarray, np.ndarray]:
    """k-nearest-neighbour graph of the rows of ``x`` (each row queried against all rows).

    Parameters
    ----------
    x : array-like of shape (n_samples, n_features)
        Points; cast once to C-contiguous float32 (FAISS's type).
    n_neighbors : int
        Neighbours per point **including the point itself** (umap-learn's convention), so
        ``n_neighbors=16`` gives the point and its 15 nearest others. At most ``n_samples``.
    method : {'auto', 'exact', 'ivf', 'hnsw'}, default='auto'
        Index type; ``'auto'`` is exact up to :data:`EXACT_MAX_SAMPLES` samples (20,000 for at most
        16 features), IVF above.
    device : {'auto', 'cpu', 'cuda'}, default='auto'
        ``'auto'`` uses a GPU when FAISS or torch sees one, else the CPU. ``'cuda'`` without a GPU
        raises.
    random_state : None, int or numpy Generator, default=None
        Seeds IVF's k-means and its training subsample; unused by the other indices.
    metric : {'euclidean', 'cosine'}, default='euclidean'
        ``'cosine'`` L2-normalises the rows first and returns the cosine *distance*
        ``1 - cos = ‖a - b‖² / 2`` of the normalised rows.

    Returns
    -------
    indices : ndarray of shape (n_samples, n_neighbors), int64
        ``indices[i, 0] == i``; then the neighbours by increasing distance.
    dists : ndarray of shape (n_samples, n_neighbors), float32
        Plain (not squared) L2 distances (cosine distances for ``metric='cosine'``);
        ``dists[:, 0] == 0``.

    Raises
    ------
    TopodataInputError
        On NaN/inf, a non-2-D ``x``, ``n_neighbors`` outside ``[1, n_samples]`` or an unknown
        option; ``device='cuda'`` without a GPU.

    Notes
    -----
    Duplicated points: FAISS may return a twin before the point itself (both at distance 0),
    or, with more than ``n_neighbors`` copies, not return the point at all. Each row is
    re-ordered so that the point comes first and keeps its twins after it.

    Examples
    --------
    >>> import numpy as np
    >>> from topodata.neighbors import knn
    >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    >>> idx, d = knn(x, 2)
    >>> idx.tolist(), d.round(3).tolist()
    ([[0, 1], [1, 0], [2, 0]], [[0.0, 1.0], [0.0, 1.0], [0.0, 2.0]])
    """
    arr = V.check_features(x, name="x", dtype=np.float32)
    n = arr.shape[0]
    V.check_scalar(n_neighbors, "n_neighbors", (int, np.integer), min_val=1, max_val=n)
    k = int(n_neighbors)
    V.check_options(method, "method", METHODS)
    V.check_options(device, "device", DEVICES)
    V.check_options(metric, "metric", METRICS)
    rng = V.check_random_state(random_state)
    arr = V.as_float32(arr)
    if metric == "cosine":
        arr = l2_normalize(arr)
    if method == "auto":
        method = auto_method(n, arr.shape[1])

    backend = _resolve_device(device)
    if backend == "torch-cuda":
        # torch has no approximate index; brute force on the GPU is fast enough up to ~10^6 rows.
        idx, sq = _torch_cuda_knn(arr, k)
    else:
        idx, sq = _faiss_knn(arr, k, method=method, gpu=backend == "faiss-gpu", rng=rng)

    idx, sq = _repair_missing(arr, arr, idx, sq, k)
    idx, sq = _self_first(idx, sq)
    dists = np.sqrt(np.maximum(sq, 0.0, dtype=np.float32))
    if metric == "cosine":
        dists = (dists * dists / 2.0).astype(np.float32)
    return np.ascontiguousarray(idx, dtype=np.int64), np.ascontiguousarray(dists, dtype=np.float32)


class KnnIndex:
    """A FAISS index of reference rows, queried by other rows in batches (fitted state reused).

    For placing new points among fitted ones: the index is built once (``fit``) and queried many
    times, in this process or, pickled, in other processes (the FAISS index travels as its
    serialised bytes), with the same answers.

    Parameters
    ----------
    method : {'auto', 'exact', 'ivf', 'hnsw'}, default='auto'
        As :func:`knn`; ``'auto'`` is :func:`auto_method` of the reference rows and ``n_queries``.
    random_state : None, int or numpy Generator, default=None
        Seeds IVF's k-means and its training subsample.
    n_queries : int or None, default=None
        How many rows will be queried in all, for ``'auto'``; None = as many as the reference rows
        (exact up to :data:`EXACT_MAX_SAMPLES` of them).

    Examples
    --------
    >>> import numpy as np
    >>> from topodata.neighbors import KnnIndex
    >>> ref = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    >>> idx, d = KnnIndex().fit(ref).query(np.array([[0.9, 0.0]]), 2)
    >>> idx.tolist(), d.astype(float).round(3).tolist()
    ([[1, 0]], [[0.1, 0.9]])
    """

    def __init__(self, method: str = "auto", random_state: Any = None, n_queries: int | None = None) -> None:
        self.method = method
        self.random_state = random_state
        self.n_queries = n_queries

    def fit(self, x: Any) -> "KnnIndex":
        arr = V.as_float32(V.check_features(x, name="x", dtype=np.float32))
        V.check_options(self.method, "method", METHODS)
        rng = V.check_random_state(self.random_state)
        if self.n_queries is not None:
            V.check_scalar(self.n_queries, "n_queries", (int, np.integer), min_val=0)
        method = self.method
        if method == "auto":
            method = auto_method(arr.shape[0], arr.shape[1], self.n_queries)
        with canonical_threads():
            self.index_ = _build_index(arr, 16, method, rng)
        self.method_ = method
        self.n_features_in_ = arr.shape[1]
        self.n_samples_fit_ = arr.shape[0]
        return self

    def query(self, q: Any, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, dists)`` of shape (n_queries, n_neighbors): the nearest reference rows of each
        query row by increasing plain L2 distance (no self column: queries are not in the index)."""
        arr = V.as_float32(V.check_features(q, name="queries", dtype=np.float32, min_samples=0))
        if arr.shape[1] != self.n_features_in_:
            raise V.TopodataInputError(
                f"queries have {arr.shape[1]} features but the index was fitted on {self.n_features_in_}"
            )
        V.check_scalar(n_neighbors, "n_neighbors", (int, np.integer), min_val=1, max_val=self.n_samples_fit_)
        with canonical_threads():
            sq, idx = self.index_.search(arr, int(n_neighbors))
        if (idx < 0).any():  # a probe found too few points: recall those rows exactly
            idx, sq = _repair_missing(_reference_rows(self.index_), arr, idx, sq, int(n_neighbors))
        d = np.sqrt(np.maximum(sq, 0.0, dtype=np.float32))
        return np.ascontiguousarray(idx, dtype=np.int64), np.ascontiguousarray(d, dtype=np.float32)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if "index_" in state:
            import faiss

            state["index_"] = faiss.serialize_index(state["index_"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "index_" in state:
            import faiss

            state["index_"] = faiss.deserialize_index(state["index_"])
        self.__dict__.update(state)


def restrict_knn(
    x: Any, indices: np.ndarray, dists: np.ndarray, rows: Any, *, random_state: Any = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The kNN graph of ``x[rows]``, from a kNN graph of all of ``x`` (:func:`knn`'s contract).

    A row whose listed neighbours all stay keeps them (renumbered into ``rows``' positions): its
    nearest neighbours among fewer points cannot be others. Only the rows that lost a neighbour are
    searched again among ``x[rows]``, with a :class:`KnnIndex` (``'auto'`` for that many queries:
    exact for a few, IVF seeded by ``random_state`` when brute force would scan too much). From an
    exact graph with an exact re-search this equals ``knn(x[rows], k, method='exact')`` up to the
    order of equal distances; the graph need not be rebuilt when a few rows leave (e.g. the second
    copies of near-duplicates).

    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0], [1.1], [5.0]])
    >>> idx, d = knn(x, 2, method="exact")
    >>> sub, _ = restrict_knn(x, idx, d, [0, 1, 3])  # point 2 leaves: point 1 looks again
    >>> sub.tolist()
    [[0, 1], [1, 0], [2, 1]]
    """
    rows = np.asarray(rows, dtype=np.int64)
    n, k = indices.shape
    pos = np.full(n, -1, dtype=np.int64)
    pos[rows] = np.arange(rows.size)
    sub = pos[indices[rows]]
    d = np.array(dists[rows], dtype=np.float32)
    bad = np.flatnonzero((sub < 0).any(axis=1))
    if bad.size:
        xs = V.as_float32(np.asarray(x, dtype=np.float32)[rows])
        k_eff = min(k, rows.size)
        index = KnnIndex(random_state=random_state, n_queries=int(bad.size)).fit(xs)
        ib, db = index.query(xs[bad], k_eff)
        ib, db = _self_first(ib, db, self_ids=bad)  # plain distances sort as squared ones do
        sub = sub[:, :k_eff]
        d = d[:, :k_eff]
        sub[bad] = ib
        d[bad] = db
    return np.ascontiguousarray(sub, dtype=np.int64), np.ascontiguousarray(d, dtype=np.float32)


def _reference_rows(index) -> np.ndarray:
    """The rows stored in a flat, IVF-flat or HNSW-flat FAISS index, in insertion order."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.make_direct_map()
    return index.reconstruct_n(0, index.ntotal)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero), float32 C-contiguous."""
    x = V.as_float32(x)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return V.as_float32(x / np.where(norms > 0, norms, 1.0))


def _resolve_device(device: str) -> str:
    """Pick ``'faiss-gpu'``, ``'torch-cuda'`` or ``'faiss-cpu'`` for the requested device."""
    if device == "cpu":
        return "faiss-cpu"
    import faiss

    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        return "faiss-gpu"
    try:
        import torch

        if torch.cuda.is_available():
            return "torch-cuda"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if device == "cuda":
        raise V.TopodataInputError(
            "device='cuda' but neither faiss nor torch sees a GPU; use device='cpu' or 'auto'"
        )
    return "faiss-cpu"


def _build_index(x: np.ndarray, k: int, method: str, rng: np.random.Generator):
    """A trained, filled FAISS index of ``x`` (L2 metric)."""
    import faiss

    n, d = x.shape
    if method == "exact":
        index = faiss.IndexFlatL2(d)
    elif method == "hnsw":
        index = faiss.IndexHNSWFlat(d, _HNSW_M)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = max(64, 2 * k)
    else:
        # IVF: ~4 sqrt(n) lists (at least 39 training points each, FAISS's own floor), 10 k-means
        # iterations on at most 64 points per list, 1/8 of the lists probed (at least 16): recall
        # >= 0.97 on clustered 64-d features at 60k points (scripts/bench_topoprune.py).
        nlist = int(max(1, min(4 * math.sqrt(n), n // 39)))
        # faiss's Python wrapper keeps a reference to the quantiser in index.referenced_objects
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist, faiss.METRIC_L2)
        index.cp.seed = V.derive_seed(rng)
        index.cp.niter = 10
        n_train = min(n, 64 * nlist)
        train = x if n_train == n else x[np.sort(rng.choice(n, size=n_train, replace=False))]
        index.train(train)
        index.nprobe = _ivf_nprobe(n, nlist)
    index.add(x)
    return index


def _ivf_nprobe(n: int, nlist: int) -> int:
    """Lists probed per query: 1/8 of them (at least 16), but no more than needed to scan about
    :data:`IVF_SCAN` points. Without the cap the work per query grows with ``n`` (n/8 points), so the
    kNN graph of n rows cost O(n²): 1/8 of brute force. The cap leaves every index of up to ~65,000
    rows as it was; the recall it keeps above that is measured by ``scripts/bench_scaling.py``."""
    per_list = max(1.0, n / nlist)
    capped = math.ceil(IVF_SCAN / per_list)
    return int(min(nlist, max(16, min(nlist // 8, capped))))


@canonical_threads()  # FAISS's BLAS sums follow the thread count (distances differ in 128-d)
def _faiss_knn(
    x: np.ndarray, k: int, *, method: str, gpu: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Query every row of ``x`` against the index of ``x``; returns squared L2 distances."""
    if not gpu and method == "ivf" and x.shape[0] > SEARCH_BLOCK:
        from ._engine import current_engine

        if current_engine().name != "inprocess":  # the same index, built by KnnIndex so that it travels
            return _search_on_engine(KnnIndex("ivf", random_state=rng).fit(x), x, k)
    index = _build_index(x, k, method, rng)
    if gpu and method != "hnsw":  # pragma: no cover - needs faiss-gpu; faiss has no GPU HNSW
        import faiss

        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    sq, idx = index.search(x, k)
    return idx.astype(np.int64, copy=False), sq.astype(np.float32, copy=False)


def _search_on_engine(index: "KnnIndex", x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Search the rows of ``x`` in blocks of :data:`SEARCH_BLOCK`, one task each (Ray).

    The fitted index is built once by the caller and travels serialised (:class:`KnnIndex`'s
    pickling). Only for IVF: each query probes its own lists and scans them by itself, so a block
    gets the answers that one call over all rows gives (tested), whatever machine searches it.
    """
    from ._engine import map_tasks, share

    ref, xs = share(index), share(x)
    n = x.shape[0]
    parts = map_tasks(_search_block, [(ref, xs, s, min(n, s + SEARCH_BLOCK), int(k))
                                      for s in range(0, n, SEARCH_BLOCK)], desc="kNN graph search")
    return (np.concatenate([p[0] for p in parts]).astype(np.int64, copy=False),
            np.concatenate([p[1] for p in parts]).astype(np.float32, copy=False))


def _search_block(index: "KnnIndex", x: np.ndarray, start: int, stop: int,
                  k: int) -> tuple[np.ndarray, np.ndarray]:
    """One task of :func:`_search_on_engine`: ``(indices, squared distances)`` of rows ``start:stop``
    (the raw FAISS answer: :func:`knn` repairs and orders the whole graph afterwards)."""
    with canonical_threads():
        sq, idx = index.index_.search(np.ascontiguousarray(x[start:stop]), k)
    return idx, sq


def _torch_cuda_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - GPU
    """Exact kNN with ``torch.cdist`` + ``topk`` on CUDA, in row blocks; squared L2 out."""
    import torch

    xt = torch.from_numpy(x).to("cuda")
    idx_out = np.empty((x.shape[0], k), dtype=np.int64)
    sq_out = np.empty((x.shape[0], k), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, x.shape[0], _TORCH_BLOCK):
            block = xt[start : start + _TORCH_BLOCK]
            # compute_mode: the matmul form is fast and its rounding is repaired by the sort below
            d = torch.cdist(block, xt, compute_mode="use_mm_for_euclid_dist")
            vals, ids = torch.topk(d, k, dim=1, largest=False, sorted=True)
            idx_out[start : start + block.shape[0]] = ids.cpu().numpy()
            sq_out[start : start + block.shape[0]] = (vals * vals).cpu().numpy()
    return idx_out, sq_out


def _repair_missing(
    ref: np.ndarray, queries: np.ndarray, idx: np.ndarray, sq: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate indices return ``-1`` when a probe finds fewer than ``k`` points: search those
    query rows again exactly among ``ref`` (few rows, so brute force on them alone is cheap)."""
    bad = np.flatnonzero((idx < 0).any(axis=1))
    if bad.size == 0:
        return idx, sq
    import faiss

    flat = faiss.IndexFlatL2(ref.shape[1])
    flat.add(np.ascontiguousarray(ref, dtype=np.float32))
    sq_b, idx_b = flat.search(np.ascontiguousarray(queries[bad]), k)
    idx = idx.copy()
    sq = sq.copy()
    idx[bad] = idx_b
    sq[bad] = sq_b
    return idx, sq


def _self_first(idx: np.ndarray, sq: np.ndarray, self_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Put each point in column 0 with distance 0 and keep the rest sorted (vectorised).

    Row ``i`` is point ``i``, or ``self_ids[i]`` when given. Rows where the point is missing (more
    than ``k`` exact duplicates) get it in place of their last column. A stable sort on
    ``(distance, with self forced to -1)`` then moves it first.
    """
    n = idx.shape[0]
    ids = np.arange(n) if self_ids is None else np.asarray(self_ids, dtype=np.int64)
    rows = ids[:, None]
    is_self = idx == rows
    missing = ~is_self.any(axis=1)
    if missing.any():
        idx = idx.copy()
        sq = sq.copy()
        idx[missing, -1] = ids[missing]
        is_self = idx == rows
    key = np.where(is_self, -1.0, np.maximum(sq, 0.0)).astype(np.float64)
    order = np.argsort(key, axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, axis=1)
    sq = np.take_along_axis(sq, order, axis=1)
    sq[:, 0] = 0.0
    return idx, sq
