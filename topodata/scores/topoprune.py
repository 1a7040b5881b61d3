"""TopoPrune: per-sample topological displacement on the global manifold.

:func:`topoprune` embeds the features with UMAP (:func:`topodata.manifold.global_manifold`), takes each
sample's kNN neighbourhood on that manifold (per class by default), runs batched Rips persistence on all
neighbourhoods and a few gradient steps on the manifold coordinates of their summed persistence; the score
is each sample's displacement, plus a label-disagreement term. Stage timings are reported in
``MethodOutput.timings_s`` under ``manifold``, ``knn``, ``local_topology`` and ``displacement``.

Score direction: **higher = more displaced / more foreign neighbours** (class boundary or label noise);
``select``'s coverage strategy drops the top ``β`` and spreads the budget over score strata.
The steps and the measurements behind each default (density weighting, step size, per-class
neighbourhoods, H1 off, label term, β schedule, UMAP epochs) are in
``docs/algorithms.md#topoprune-step-by-step`` and ``docs/algorithms.md#topoprune-choices-and-why``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import _validation as V
from .._threads import deterministic
from . import MethodOutput
from ._classflow import class_flow, class_neighbourhoods, median_death

__all__ = ["TopoPruneConfig", "CONFIG", "topoprune", "local_neighbourhoods", "topological_displacement",
           "label_disagreement",
           "SCORES"]

SCORES = ("displacement", "total_persistence", "entropy", "h1_count")
MANIFOLDS = ("umap", "densmap", "none")
DENSITY = ("radius", "none")
NEIGHBOURHOODS = ("class", "global")


@dataclass
class TopoPruneConfig:
    """Hyper-parameters of :func:`topoprune`; each becomes ``topodata select --<name-with-dashes>``."""

    score: str = field(
        default="displacement",
        metadata={"help": "per-sample score: displacement (gradient flow, the method), or the cheaper "
                          "diagram summaries of each sample's neighbourhood: total_persistence, "
                          "entropy (H0 persistence entropy), h1_count (runs ripser on every "
                          "neighbourhood)"},
    )
    manifold: str = field(
        default="umap",
        metadata={"help": "global stage: umap, densmap (density-preserving UMAP) or none "
                          "(the L2-normalised features themselves)"},
    )
    n_components: int = field(default=8, metadata={"help": "dimension of the UMAP manifold"})
    umap_neighbors: int = field(
        default=15, metadata={"help": "kNN size of the feature graph given to UMAP (including self)"}
    )
    min_dist: float = field(default=0.1, metadata={"help": "UMAP min_dist"})
    umap_epochs: int = field(
        default=100,
        metadata={"help": "UMAP optimisation epochs; 0 = umap-learn's default (500 below 10,000 "
                          "samples, else 200)"},
    )
    umap_init: str = field(
        default="spectral",
        metadata={"help": "UMAP's starting layout: spectral (umap-learn's default) or pca (the features' "
                          "principal components: about 5 s less at 60,000 rows on 2 cores, other selections)"},
    )
    umap_fit_size: int = field(
        default=100_000,
        metadata={"help": "above this many samples UMAP is fitted on a seeded sample of this size and the "
                          "others are placed on it (membership-weighted mean of their nearest sample "
                          "points, in batches); 0 = always fit all samples"},
    )
    density: str = field(
        default="radius",
        metadata={"help": "radius: measure each neighbourhood in the original features' local scale "
                          "(undoes UMAP's density equalisation); none: as the manifold left it"},
    )
    k_local: int = field(
        default=16,
        metadata={"help": "neighbours of each sample in its local neighbourhood (not counting itself)"},
    )
    neighbourhoods: str = field(
        default="class",
        metadata={"help": "class: neighbours from the sample's own class (each class needs more than "
                          "k_local samples); global: from all samples"},
    )
    steps: int = field(default=3, metadata={"help": "gradient steps of the displacement flow"})
    step_size: float = field(
        default=0.5,
        metadata={"help": "largest first step, in median H0 death lengths (the learning rate is "
                          "scaled from it)"},
    )
    power: float = field(
        default=2.0, metadata={"help": "exponent of each lifetime in the total-persistence loss"}
    )
    h1_fraction: float = field(
        default=0.0,
        metadata={"help": "fraction of neighbourhoods whose H1 (ripser, ~0.2 ms each) joins the loss; "
                          "0 = H0 only"},
    )
    h1_weight: float = field(default=1.0, metadata={"help": "weight of the H1 term against H0"})
    knn_method: str = field(
        default="auto", metadata={"help": "FAISS index for the kNN graphs (the feature graph, which the class "
                                          "budgets and near-duplicate groups share, and the manifold's): auto "
                                          "(exact up to 100,000 rows, 20,000 in <= 16 dimensions; IVF above), "
                                          "exact, ivf or hnsw"}
    )
    knn_device: str = field(
        default="auto", metadata={"help": "where kNN runs: auto (GPU when present), cpu or cuda"}
    )
    n_jobs: int = field(default=1, metadata={"help": "processes for ripser's H1 (-1 = all cores)"})
    label_weight: float = field(
        default=1.0,
        metadata={"help": "weight of the label-consistency term added to the normalised score: the "
                          "fraction of the sample's neighbours in the feature kNN graph (the one UMAP "
                          "gets) that carry another label; 0 = the topological score alone"},
    )

    noise_vote: float = field(
        default=0.75,
        metadata={"help": "a sample is flagged as a likely label error when more than this fraction of "
                          "its feature kNN neighbours carry another label (a class boundary gives about "
                          "half, a flipped label nearly all); under --beta auto each class's cut is at "
                          "least its flagged share (1 = flag none)"},
    )
    vote_weights: str = field(
        default="uniform",
        metadata={"help": "how the neighbours count in the noise vote: uniform, or balanced (each by its "
                          "class's inverse frequency, so that a rare class is not outvoted by the sheer "
                          "number of a large one; the same as uniform when the classes are equal)"},
    )

    def __post_init__(self) -> None:
        from ..manifold import INITS
        from ..neighbors import DEVICES, METHODS as KNN_METHODS

        V.check_options(self.score, "score", SCORES)
        V.check_options(self.manifold, "manifold", MANIFOLDS)
        V.check_scalar(self.n_components, "n_components", (int, np.integer), min_val=1)
        V.check_scalar(self.umap_neighbors, "umap_neighbors", (int, np.integer), min_val=2)
        V.check_scalar(self.min_dist, "min_dist", (int, float), min_val=0.0)
        V.check_scalar(self.umap_epochs, "umap_epochs", (int, np.integer), min_val=0)
        V.check_options(self.umap_init, "umap_init", INITS)
        if self.umap_fit_size:
            V.check_scalar(self.umap_fit_size, "umap_fit_size", (int, np.integer), min_val=100)
        V.check_options(self.density, "density", DENSITY)
        V.check_scalar(self.k_local, "k_local", (int, np.integer), min_val=2)
        V.check_options(self.neighbourhoods, "neighbourhoods", NEIGHBOURHOODS)
        V.check_scalar(self.steps, "steps", (int, np.integer), min_val=1)
        V.check_scalar(self.step_size, "step_size", (int, float), min_val=0.0, include_min=False)
        V.check_scalar(self.power, "power", (int, float), min_val=0.0, include_min=False)
        V.check_scalar(self.h1_fraction, "h1_fraction", (int, float), min_val=0.0, max_val=1.0)
        V.check_scalar(self.h1_weight, "h1_weight", (int, float), min_val=0.0)
        V.check_scalar(self.label_weight, "label_weight", (int, float), min_val=0.0)
        V.check_scalar(self.noise_vote, "noise_vote", (int, float), min_val=0.0, max_val=1.0)
        V.check_options(self.vote_weights, "vote_weights", ("balanced", "uniform"))
        V.check_options(self.knn_method, "knn_method", KNN_METHODS)
        V.check_options(self.knn_device, "knn_device", DEVICES)
        V.check_n_jobs(self.n_jobs)


CONFIG = TopoPruneConfig


# ----------------------------------------------------------------------------- neighbourhoods
def local_neighbourhoods(
    z: np.ndarray,
    labels: np.ndarray | None,
    k_local: int,
    *,
    knn_method: str = "auto",
    device: str = "auto",
    random_state: Any = None,
) -> np.ndarray:
    """Neighbourhoods ``P_i = {i} ∪ N_k(i)`` as an (n_samples, k_local + 1) int64 index array.

    Column 0 is ``i`` itself, then its ``k_local`` nearest neighbours in ``z`` by increasing
    distance, all indices into ``z``. With ``labels`` the neighbours come from ``i``'s own class
    (one FAISS call per class, not per sample; a class of at most ``k_local`` samples gives each of
    them the whole class, padded with copies of ``i``: :func:`~topodata.scores._classflow.class_neighbourhoods`);
    with ``labels=None`` from all samples.

    Raises
    ------
    TopodataInputError
        If ``labels`` is None and the whole set has at most ``k_local`` samples.
    """
    from ..neighbors import knn

    z = V.check_features(z, name="z", dtype=np.float32)
    n = z.shape[0]
    if labels is not None:
        labels = V.check_labels(labels, n_samples=n)
    V.check_scalar(k_local, "k_local", (int, np.integer), min_val=1)
    rng = V.check_random_state(random_state)
    if labels is None:
        if n <= k_local:
            raise V.TopodataInputError(
                f"k_local={k_local} needs at least {k_local + 1} samples; got {n}. Lower k_local"
            )
        idx, _ = knn(z, k_local + 1, method=knn_method, device=device, random_state=rng)
        return idx
    out = np.empty((n, k_local + 1), dtype=np.int64)
    for c in np.unique(labels):  # a loop over classes, not samples
        members = np.flatnonzero(labels == c)
        idx = class_neighbourhoods(z[members], k_local, knn_method=knn_method, device=device, random_state=rng)
        out[members] = members[idx]
    return out


def _stretch_weights(feature_dists: np.ndarray, manifold_dists: np.ndarray, power: float) -> np.ndarray:
    """``w_i = ρ_i^power`` with ``ρ_i = r_F(i) / r_Z(i)`` over its median: how much the global map
    stretched the space around ``i``.

    ``r_F`` and ``r_Z`` are the mean distances from ``i`` to the nearer half of its nearest
    neighbours among *all* samples (the same k) in the L2-normalised features and in the manifold,
    i.e. the local density that UMAP equalised. The nearer half, not all k: with all k the far
    neighbours (across a small circle, into the next structure) made the weights depend on the
    fixture: a sparse circle scored under 1.5x a dense blob on some density fixtures, which the
    nearer half corrects (measured: ``scripts/bench_density_grid.py --grid wide``).
    Multiplying the lifetimes of ``P_i`` by ``ρ_i`` measures its filtration in the features' local
    scale. Radii from the label-free kNN on purpose: a per-class radius would also cancel the long
    edges of a mislabelled sample to its own class (measured: ``scripts/bench_topoprune.py
    --choices``).
    """
    near = 1 + max(1, (feature_dists.shape[1] - 1) // 2)  # column 0 is the sample itself
    r_f = feature_dists[:, 1:near].mean(axis=1, dtype=np.float64)
    r_z = manifold_dists[:, 1:near].mean(axis=1, dtype=np.float64)
    rho = np.where(r_z > 0, r_f / np.where(r_z > 0, r_z, 1.0), 1.0)
    med = np.median(rho)
    return (rho / med if med > 0 else np.ones_like(rho)) ** power


# ----------------------------------------------------------------------------- the flow
@deterministic  # torch's scatter-add order follows the thread count
def topological_displacement(
    z: np.ndarray,
    neigh: np.ndarray,
    *,
    steps: int = 3,
    step_size: float = 0.5,
    power: float = 2.0,
    weights: np.ndarray | None = None,
    h1_sample: np.ndarray | None = None,
    h1_edges: list[np.ndarray] | None = None,
    h1_weight: float = 1.0,
) -> np.ndarray:
    """Move the points down the summed local total persistence; return how far each moved.

    Parameters
    ----------
    z : ndarray of shape (n_samples, d)
        Manifold coordinates ``Z(0)``.
    neigh : ndarray of int64, shape (n_samples, k + 1)
        Neighbourhoods from :func:`local_neighbourhoods`.
    steps, step_size, power : see :class:`TopoPruneConfig`.
    weights : ndarray of shape (n_samples,), optional
        Per-neighbourhood loss weights (``density='radius'``); None = all 1.
    h1_sample, h1_edges : optional
        Rows of ``neigh`` with an H1 term and, for each, its critical edges (m, 4) within the
        neighbourhood (``H1Diagram.edges`` at ``Z(0)``), kept fixed over the steps.
    h1_weight : float, default=1.0

    Returns
    -------
    ndarray of shape (n_samples,), float64
        ``‖Z_i(T) − Z_i(0)‖``; 0 for points that no loss reaches.

    Notes
    -----
    Plain gradient descent on purpose: adaptive optimisers (Adam) rescale every coordinate's step
    to about the learning rate, which would erase exactly the magnitude differences the score is
    made of.
    """
    import torch

    from ..topology import h0_point_cloud, h1_total_persistence

    V.check_scalar(steps, "steps", (int, np.integer), min_val=1)
    V.check_scalar(step_size, "step_size", (int, float), min_val=0.0, include_min=False)
    V.check_scalar(power, "power", (int, float), min_val=0.0, include_min=False)
    z = V.check_features(z, name="z", dtype=np.float32)
    neigh = np.asarray(neigh)
    if neigh.ndim != 2 or neigh.shape[0] != z.shape[0] or neigh.dtype.kind not in "iu":
        raise V.TopodataInputError(
            f"neigh must be integer neighbourhoods of shape ({z.shape[0]}, k + 1); got shape "
            f"{neigh.shape}, dtype {neigh.dtype}"
        )
    z0 = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    nb = torch.from_numpy(np.ascontiguousarray(neigh, dtype=np.int64))
    w = None if weights is None else torch.from_numpy(np.asarray(weights, dtype=np.float32))
    if h1_sample is not None and len(h1_sample):
        h1_rows = torch.from_numpy(np.asarray(h1_sample, dtype=np.int64))
    else:
        h1_rows = None
    zt = z0.clone()
    lr = None
    for _ in range(int(steps)):
        zt.requires_grad_(True)
        deaths = h0_point_cloud(zt[nb]).deaths  # gradient flows through the critical edges
        per = (deaths**power).sum(dim=1)
        loss = (per * w).sum() if w is not None else per.sum()
        if h1_rows is not None:
            pts = zt[nb[h1_rows]]
            per1 = h1_total_persistence(pts, h1_edges, p=power, reduction="none")
            loss = loss + h1_weight * ((per1 * w[h1_rows]).sum() if w is not None else per1.sum())
        (grad,) = torch.autograd.grad(loss, zt)
        if lr is None:
            gmax = float(grad.norm(dim=1).max())
            med = median_death(deaths.detach().numpy(), neigh)  # torch's median is the lower one
            lr = step_size * med / gmax if gmax > 0 else 0.0
        zt = (zt - lr * grad).detach()
    return (zt - z0).norm(dim=1).double().numpy()


# ----------------------------------------------------------------------------- the method
def topoprune(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    budgets: dict[int, int],
    rng: np.random.Generator,
    dynamics: Any = None,
    feature_graph: tuple[np.ndarray, np.ndarray] | None = None,
    **params: Any,
) -> MethodOutput:
    """TopoPrune scores: displacement under a local topological flow on the global manifold.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
    budgets : dict
        Unused (the framework's ``coverage`` strategy selects from the scores).
    rng : numpy Generator
        Seeds UMAP, IVF and the H1 subsample; same seed ⇒ same scores.
    dynamics : ignored
    feature_graph : (indices, dists), optional
        The kNN graph of the L2-normalised features as :func:`topodata.neighbors.knn` builds it
        (its contract, at least ``umap_neighbors`` columns), when the caller already has it
        (``select`` does, from its class budgets); its first ``umap_neighbors`` columns are used.
    **params : fields of :class:`TopoPruneConfig`.

    Returns
    -------
    MethodOutput
        ``scores`` (n_samples,) float64, higher = more displaced; ``params`` = the config plus
        derived values; ``timings_s`` for ``manifold``, ``knn``, ``local_topology``,
        ``displacement``; ``extras`` = ``{"manifold": Z, "neighbourhoods": [...]}`` (a few
        neighbourhoods' diagrams for :func:`topodata.plots.plot_diagrams`).

    Raises
    ------
    TopodataInputError
        Unknown or out-of-range parameters; a class with at most ``k_local`` samples when
        ``neighbourhoods='class'``.

    Examples
    --------
    >>> import numpy as np
    >>> from topodata.scores.topoprune import topoprune
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(60, 5)); y = np.repeat([0, 1], 30)
    >>> out = topoprune(x, y, budgets={0: 3, 1: 3}, rng=rng, manifold="none", k_local=8)
    >>> out.scores.shape
    (60,)
    """
    unknown = sorted(set(params) - set(TopoPruneConfig.__dataclass_fields__))
    if unknown:
        valid = ", ".join(TopoPruneConfig.__dataclass_fields__)
        raise V.TopodataInputError(f"topoprune got unknown option(s) {unknown}; valid options: {valid}")
    cfg = TopoPruneConfig(**params)
    x, y = V.check_features_labels(features, labels)
    from ..manifold import global_manifold, l2_normalize
    from ..neighbors import knn

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    method = "none" if cfg.manifold == "none" else "umap"
    manifold_seed, knn_seed = V.derive_seed(rng), V.derive_seed(rng)
    k_umap = min(cfg.umap_neighbors, x.shape[0] - 1)
    knn_opts = {"method": cfg.knn_method, "device": cfg.knn_device, "random_state": knn_seed}
    # the features' kNN graph: UMAP's input, the local radius that density='radius' restores and
    # the neighbours whose labels the label-consistency term reads; built once
    need_graph = method == "umap" or cfg.label_weight > 0 or cfg.noise_vote < 1
    if not need_graph:
        graph = None
    elif feature_graph is not None:
        shape = np.shape(feature_graph[0])
        if len(shape) != 2 or shape[0] != x.shape[0] or shape[1] < k_umap or np.shape(feature_graph[1]) != shape:
            raise V.TopodataInputError(
                f"feature_graph must be (indices, dists) of shape ({x.shape[0]}, >= {k_umap}); got {shape}")
        graph = (feature_graph[0][:, :k_umap], feature_graph[1][:, :k_umap])
    else:
        graph = knn(l2_normalize(x), k_umap, **knn_opts)
    z = global_manifold(
        x, method=method, n_components=cfg.n_components, n_neighbors=k_umap, min_dist=cfg.min_dist,
        densmap=cfg.manifold == "densmap", n_epochs=cfg.umap_epochs or None,
        knn=graph if method == "umap" else None,
        random_state=manifold_seed, fit_size=cfg.umap_fit_size or None, init=cfg.umap_init,
    )
    timings["manifold"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    # per-class neighbourhoods, H0 only: the classes are independent pieces of work on the current
    # engine (in-process or Ray tasks; scores/_classflow.py), the same result as one pass over all
    per_class = cfg.neighbourhoods == "class" and cfg.score == "displacement" and cfg.h1_fraction == 0
    if not per_class:
        neigh = local_neighbourhoods(
            z, y if cfg.neighbourhoods == "class" else None, cfg.k_local,
            knn_method=cfg.knn_method, device=cfg.knn_device, random_state=knn_seed,
        )
    weights = None
    if cfg.density == "radius" and method == "umap":
        weights = _stretch_weights(graph[1], knn(z, k_umap, **knn_opts)[1], cfg.power)
    timings["knn"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    from ..topology import h0_point_cloud, h1_point_cloud_batch

    if per_class:
        neigh, deaths, flow, flow_timings = class_flow(
            z, y, k_local=cfg.k_local, steps=cfg.steps, step_size=cfg.step_size, power=cfg.power,
            weights=weights, knn_method=cfg.knn_method, device=cfg.knn_device, knn_seed=knn_seed,
        )
    else:
        deaths = h0_point_cloud(z[neigh]).deaths
    n = z.shape[0]
    h1_rows = np.empty(0, dtype=np.int64)
    if cfg.score == "h1_count":
        h1_rows = np.arange(n)
    elif cfg.h1_fraction > 0:
        m = max(1, int(round(cfg.h1_fraction * n)))
        h1_rows = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
    h1 = h1_point_cloud_batch(z[neigh[h1_rows]], n_jobs=cfg.n_jobs) if h1_rows.size else []
    timings["local_topology"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if per_class:
        scores = flow
        timings["local_topology"] = flow_timings["local_topology"]
        t0 -= flow_timings["displacement"]
    elif cfg.score == "displacement":
        scores = topological_displacement(
            z, neigh, steps=cfg.steps, step_size=cfg.step_size, power=cfg.power, weights=weights,
            h1_sample=h1_rows, h1_edges=[d.edges for d in h1], h1_weight=cfg.h1_weight,
        )
    else:
        scores = _summary_scores(cfg, deaths, h1_rows, h1, weights)
    topo_scores = scores
    # no graph when nothing reads it (manifold='none', label_weight=0, noise_vote=1)
    disagreement = label_disagreement(graph[0], y) if graph is not None else None
    if cfg.label_weight > 0:
        scores = _normalise_max(scores) + cfg.label_weight * disagreement
    timings["displacement"] = time.perf_counter() - t0

    params_used = asdict(cfg)
    params_used.update(
        n_h1_neighbourhoods=int(h1_rows.size),
        manifold_shape=list(z.shape),
        median_h0_death=median_death(np.asarray(deaths), neigh),
    )
    suspects, contested = None, None
    if cfg.noise_vote < 1:
        vote = disagreement if cfg.vote_weights == "uniform" else label_disagreement(graph[0], y, balanced=True)
        suspects = vote > cfg.noise_vote
        contested = float(np.mean(vote > 0.5))  # most neighbours of another label (MethodOutput.contested)
    params_used.update(max_topological_score=float(np.max(topo_scores)),
                       mean_label_disagreement=None if disagreement is None else float(disagreement.mean()))
    extras = {"manifold": z, "neighbourhoods": _example_diagrams(z, neigh, deaths, scores),
              "topological_scores": topo_scores}
    return MethodOutput(scores=scores, params=params_used, timings_s=timings, extras=extras, suspects=suspects,
                        contested=contested)


def label_disagreement(knn_indices: np.ndarray, labels: np.ndarray, rows: np.ndarray | None = None, *,
                       balanced: bool = False) -> np.ndarray:
    """Fraction of each sample's kNN neighbours (column 0 = itself, left out) with another label.

    Row ``i`` of ``knn_indices`` belongs to sample ``i``, or to ``rows[i]`` when only some samples
    were queried. ``balanced=True`` counts each neighbour with the inverse frequency of its label:
    neighbours come from the local mix of classes in proportion to their sizes, so a correct sample
    of a rare class is outvoted by a large class's numbers; the weighted share compares the classes'
    densities instead (equal classes: the plain share).

    The label-consistency of a sample's star in the kNN graph: 0 inside a class, large on a class
    boundary and largest for a mislabelled sample, whose neighbours carry its true class. One
    vectorised gather over the (n, k) index array.

    >>> import numpy as np
    >>> label_disagreement(np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0]]), np.array([0, 0, 1])).tolist()
    [0.5, 0.5, 1.0]
    >>> label_disagreement(np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0]]), np.array([0, 0, 1]), balanced=True).tolist()
    [0.6666666666666666, 0.6666666666666666, 1.0]
    """
    knn_indices = np.asarray(knn_indices)
    if knn_indices.ndim != 2 or knn_indices.shape[1] < 2:
        raise V.TopodataInputError(
            f"knn_indices must have shape (n_samples, k + 1) with k >= 1; got {knn_indices.shape}"
        )
    labels = np.asarray(labels)
    own = labels if rows is None else labels[rows]
    foreign = labels[knn_indices[:, 1:]] != own[:, None]
    if balanced:
        _, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if not balanced or counts.min() == counts.max():  # equal classes: the plain share, exactly
        return foreign.mean(axis=1, dtype=np.float64)
    w = (1.0 / counts)[inv.reshape(labels.shape)][knn_indices[:, 1:]]
    return (w * foreign).sum(axis=1) / w.sum(axis=1)


def _normalise_max(s: np.ndarray) -> np.ndarray:
    """``s / max(s)`` into [0, 1] (scores are non-negative), so the label term has a fixed scale."""
    top = float(np.max(s)) if s.size else 0.0
    return s / top if top > 0 else np.zeros_like(s, dtype=np.float64)


def _summary_scores(cfg, deaths, h1_rows, h1, weights) -> np.ndarray:
    """The cheap ablations: one diagram summary of ``P_i`` as the score of ``i``."""
    from ..topology import diagram_summaries

    summ = diagram_summaries(deaths, p=cfg.power)
    if cfg.score == "entropy":
        return summ["persistence_entropy_h0"].astype(np.float64)
    if cfg.score == "h1_count":
        return diagram_summaries(deaths, [d.pairs for d in h1])["n_pairs_h1"].astype(np.float64)
    total = summ["total_persistence_h0"].astype(np.float64)
    if h1_rows.size:
        t1 = diagram_summaries(deaths[h1_rows], [d.pairs for d in h1], p=cfg.power)["total_persistence_h1"]
        total[h1_rows] += cfg.h1_weight * t1
    return total * weights if weights is not None else total


def _example_diagrams(z, neigh, deaths, scores, n_examples: int = 4) -> list[dict[str, Any]]:
    """Diagrams of the least, two middle and most displaced samples' neighbourhoods, for plots."""
    from ..topology import h1_point_cloud

    order = np.argsort(scores, kind="stable")
    picks = order[np.unique(np.linspace(0, len(order) - 1, n_examples).round().astype(int))]
    out = []
    for i in picks.tolist():
        h1 = h1_point_cloud(z[neigh[i]])
        out.append({
            "center": int(i),
            "indices": neigh[i].copy(),
            "score": float(scores[i]),
            "h0": np.asarray(deaths[i], dtype=np.float64),
            "h1": h1.pairs,
        })
    return out
