"""Score extrapolation: score a fraction of the samples, predict the scores of the rest.

The framework of "Effective Data Pruning through Score Extrapolation" (arXiv 2506.09010): the
expensive part of most pruning methods is the proxy training and the scoring of *every* sample.
Here a proxy trains on a seeded class-stratified fraction, its features are extracted for all
samples, the method scores only the fraction, and an extrapolator fills in the other scores:

- :func:`knn_extrapolate`: the (``exp(-distance)``-weighted or plain) mean score of the ``k``
  nearest scored samples, on a FAISS exact index of the scored samples;
- :func:`gnn_extrapolate`: a three-layer graph convolutional network (PyTorch Geometric
  ``GCNConv``) on the kNN graph of all samples, node features = standardised embedding ⊕
  one-hot label, trained to regress the known scores (90 % of them; 10 % held back for the
  reported validation Spearman).

Scored samples keep their own score; only the others are predicted. Both return an
:class:`Extrapolation` (the full score vector plus what the manifest records). The selection
itself (budgets, strategy, noise cut) is :func:`topodata.select.select`'s, on all samples.

Which methods can be extrapolated (:data:`EXTRAPOLABLE`) and why the others are refused
(:data:`NOT_EXTRAPOLABLE`) is decided here, once, for ``select`` and the CLI.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from . import _validation as V
from ._meta import largest_remainder, n_kept, stratified_subset

__all__ = [
    "EXTRAPOLATORS",
    "EXTRAPOLABLE",
    "NOT_EXTRAPOLABLE",
    "KNNConfig",
    "GNNConfig",
    "CONFIGS",
    "Extrapolation",
    "knn_extrapolate",
    "gnn_extrapolate",
    "check_extrapolation",
    "scored_samples",
    "score_and_extrapolate",
]

EXTRAPOLATORS = ("knn", "gnn")

#: methods whose per-sample score is a property of the sample (not of a subset drawn for a budget)
EXTRAPOLABLE = ("el2n", "forgetting", "aum", "ccs", "d2", "topoprune")

#: the other registered methods, each with the reason it is refused
NOT_EXTRAPOLABLE = {
    "random": "it has no per-sample score (a uniform draw)",
    "kcenter": "its score is the distance to the centres picked for the budget, not a property of the sample",
    "herding": "its score is the order of the greedy picks for the budget, not a property of the sample",
    "moderate": "it selects by itself from the features alone, which exist for every sample: scoring all of "
                "them costs less than extrapolating",
}


@dataclass
class KNNConfig:
    """Hyper-parameters of the kNN extrapolator (the paper's k ∈ {10, 20, 50, 100})."""

    k: int = field(default=20, metadata={"help": "scored neighbours averaged per unscored sample"})
    weighting: str = field(default="exp", metadata={"help": "exp: weights exp(-distance); mean: plain mean",
                                                    "choices": ("exp", "mean")})

    def __post_init__(self) -> None:
        V.check_scalar(self.k, "k", (int, np.integer), min_val=1)
        V.check_options(self.weighting, "weighting", ("exp", "mean"))


@dataclass
class GNNConfig:
    """Hyper-parameters of the GNN extrapolator (the paper's values where it gives them)."""

    k: int = field(default=10, metadata={"help": "neighbours per sample in the kNN graph (paper: 10, 20, 50)"})
    epochs: int = field(default=100, metadata={"help": "full-batch Adam steps on the whole graph"})
    hidden: tuple = field(default=(512, 256), metadata={"help": "widths of the two hidden GCN layers"})
    dropout: float = field(default=0.5, metadata={"help": "dropout after each hidden layer"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    val_fraction: float = field(default=0.1, metadata={"help": "scored samples held back for validation"})
    device: str = field(default="auto", metadata={"help": "auto (cuda when present), cpu or cuda"})

    def __post_init__(self) -> None:
        V.check_scalar(self.k, "k", (int, np.integer), min_val=1)
        V.check_scalar(self.epochs, "epochs", (int, np.integer), min_val=1)
        self.hidden = tuple(self.hidden)
        if len(self.hidden) != 2 or not all(isinstance(h, (int, np.integer)) and h >= 1 for h in self.hidden):
            raise V.TopodataInputError(f"hidden must be two positive layer widths; got {self.hidden!r}")
        V.check_scalar(self.dropout, "dropout", (int, float), min_val=0.0, max_val=1.0, include_max=False)
        V.check_scalar(self.lr, "lr", (int, float), min_val=0.0, include_min=False)
        V.check_scalar(self.val_fraction, "val_fraction", (int, float), min_val=0.0, max_val=0.5,
                       include_min=False)
        V.check_options(self.device, "device", ("auto", "cpu", "cuda"))


CONFIGS = {"knn": KNNConfig, "gnn": GNNConfig}


@dataclass
class Extrapolation:
    """What an extrapolator returns.

    scores : ndarray of shape (n_samples,), float64; scored samples keep their own value.
    params : every hyper-parameter used (for the manifest).
    validation_spearman : Spearman correlation between predicted and true scores of held-back
        scored samples (NaN when too few were held back or the scores are constant).
    timings_s : seconds per internal stage.
    """

    scores: np.ndarray
    params: dict[str, Any]
    validation_spearman: float
    timings_s: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# checks


def check_extrapolation(
    method: str | None,
    score_fraction: Any,
    extrapolate: str | None,
    extrapolate_params: Mapping[str, Any] | None,
    *,
    method_params: Mapping[str, Any] | None = None,
    scores_given: bool = False,
) -> tuple[float, str, dict[str, Any]] | None:
    """Check the extrapolation options before anything is loaded, scored or written.

    Returns
    -------
    None when ``score_fraction`` is None (no extrapolation), else
    ``(fraction, extrapolator, params)`` with ``params`` the extrapolator's full configuration.

    Raises
    ------
    TopodataInputError
        A fraction outside (0, 1), an unknown extrapolator or option, extrapolation options
        without ``score_fraction``, given scores, or a method that cannot be extrapolated.

    Examples
    --------
    >>> check_extrapolation("el2n", 0.1, "knn", None)
    (0.1, 'knn', {'k': 20, 'weighting': 'exp'})
    >>> check_extrapolation("kcenter", 0.1, "knn", None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    topodata._validation.TopodataInputError: score_fraction: method 'kcenter' cannot be extrapolated: ...
    """
    if score_fraction is None:
        if extrapolate is not None or extrapolate_params:
            raise V.TopodataInputError("extrapolate and extrapolate_params need score_fraction (the scored share)")
        return None
    fraction = float(V.check_scalar(score_fraction, "score_fraction", (int, float), min_val=0.0, max_val=1.0,
                                    include_min=False, include_max=False))
    extrapolate = "knn" if extrapolate is None else extrapolate
    V.check_options(extrapolate, "extrapolate", EXTRAPOLATORS)
    if scores_given:
        raise V.TopodataInputError("score_fraction scores a fraction with a method; it cannot extrapolate given scores")
    method = method or "topoprune"
    if method not in EXTRAPOLABLE:
        why = NOT_EXTRAPOLABLE.get(method, "it is not known to give a per-sample score")
        raise V.TopodataInputError(
            f"score_fraction: method {method!r} cannot be extrapolated: {why}; use one of {', '.join(EXTRAPOLABLE)}"
        )
    if method == "d2" and float((method_params or {}).get("mis_ratio", 0.0)) > 0:
        raise V.TopodataInputError(
            "score_fraction: d2 with mis_ratio > 0 leaves the cut samples without a node score to extrapolate "
            "from; use mis_ratio=0 (the coverage cut plays its role)"
        )
    params = dict(extrapolate_params or {})
    config = CONFIGS[extrapolate]
    names = sorted(f.name for f in dataclasses.fields(config))
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise V.TopodataInputError(
            f"extrapolate_params: extrapolator {extrapolate!r} has no option {unknown[0]!r}; its options: "
            + ", ".join(names)
        )
    try:
        cfg = config(**params)
    except (TypeError, ValueError) as exc:  # TopodataInputError is a ValueError
        raise V.TopodataInputError(f"extrapolate_params: {exc}") from None
    return fraction, extrapolate, dataclasses.asdict(cfg)


def scored_samples(labels: Any, fraction: float, *, dynamics: Any = None, random_state: Any = 0) -> np.ndarray:
    """Sorted indices of the samples a method scores under extrapolation.

    When training dynamics are given and some samples were never seen (the proxy trained on a
    fraction, ``proxy_fraction``), the scored set is exactly the proxy's training set: the
    samples that have dynamics. Otherwise a seeded class-stratified ``fraction``
    (:func:`topodata._meta.stratified_subset`, the proxy subset's rule).

    Raises
    ------
    TopodataInputError
        When the dynamics saw another number of samples than ``fraction`` asks for.
    """
    y = np.asarray(labels)
    rng = V.check_random_state(random_state)
    if dynamics is not None:
        seen = dynamics.seen.any(axis=0)
        if not seen.all():
            classes, counts = np.unique(y, return_counts=True)
            want = int(np.maximum(1, np.floor(fraction * counts + 0.5)).sum())
            if int(seen.sum()) != want:
                raise V.TopodataInputError(
                    f"the training dynamics cover {int(seen.sum())} samples (the proxy's training set) but "
                    f"score_fraction={fraction} asks for {want}; train the proxy with proxy_fraction={fraction}"
                )
            return np.flatnonzero(seen).astype(np.int64)
    return stratified_subset(y, fraction, rng)


# ---------------------------------------------------------------------------------------------
# extrapolators


def _scored(features, scored_mask, scored_values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(x float32, mask bool, values of the scored samples float64)``."""
    x = V.check_features(features, dtype=np.float32)
    mask = np.asarray(scored_mask)
    if mask.dtype != bool or mask.shape != (x.shape[0],):
        raise V.TopodataInputError(
            f"scored_mask must be a boolean array of shape ({x.shape[0]},); got {mask.dtype} {mask.shape}"
        )
    if not mask.any():
        raise V.TopodataInputError("scored_mask marks no sample; at least one must be scored")
    values = np.asarray(scored_values, dtype=np.float64)
    if values.shape == (x.shape[0],) and values.shape[0] != mask.sum():
        values = values[mask]
    if values.shape != (int(mask.sum()),):
        raise V.TopodataInputError(
            f"scored_values must hold one value per scored sample ({int(mask.sum())}) or per sample "
            f"({x.shape[0]}); got shape {values.shape}"
        )
    if not np.isfinite(values).all():
        raise V.TopodataInputError("scored_values must be finite; the method left NaN/inf on scored samples")
    return V.as_float32(x), mask, values


def _knn_predict(x_ref: np.ndarray, v_ref: np.ndarray, x_query: np.ndarray, k: int, weighting: str) -> np.ndarray:
    """Mean (or exp(-d)-weighted mean) of the values of each query's ``k`` nearest references."""
    from .neighbors import KnnIndex

    k = min(int(k), x_ref.shape[0])
    # exact: the reference set is the small scored fraction; the paper's weight is exp(-L2), not squared
    idx, d = KnnIndex(method="exact").fit(x_ref).query(x_query, k)
    d = d.astype(np.float64)
    if weighting == "mean":
        w = np.ones_like(d)
    else:  # exp(-(d - d_min)) ∝ exp(-d) per row; the shift avoids underflow at large distances
        w = np.exp(-(d - d[:, :1]))
    return (w * v_ref[idx]).sum(axis=1) / w.sum(axis=1)


def _holdout(n_scored: int, val_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask over the scored samples: True for the held-back validation share."""
    n_val = int(round(val_fraction * n_scored))
    n_val = min(n_val, n_scored - 1)
    out = np.zeros(n_scored, dtype=bool)
    out[rng.choice(n_scored, size=max(n_val, 0), replace=False)] = True
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def knn_extrapolate(
    features: Any,
    scored_mask: Any,
    scored_values: Any,
    *,
    k: int = 20,
    weighting: str = "exp",
    val_fraction: float = 0.1,
    random_state: Any = 0,
) -> Extrapolation:
    """Predict each unscored sample's score from its ``k`` nearest scored samples.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Embedding of every sample (Euclidean distances).
    scored_mask : ndarray of bool, shape (n_samples,)
        True where the score is known.
    scored_values : array-like of shape (n_scored,) or (n_samples,)
        The known scores, in the order of ``np.flatnonzero(scored_mask)`` (or one per sample,
        read at the mask).
    k : int, default=20
        Neighbours averaged (at most the number of scored samples).
    weighting : {'exp', 'mean'}, default='exp'
        ``exp``: weights ``exp(-d)`` for plain L2 distance ``d``; ``mean``: equal weights.
    val_fraction : float, default=0.1
        Share of the scored samples held back and predicted from the others, for the reported
        validation Spearman (the predictions of the unscored samples use every scored sample).
    random_state : None, int or numpy Generator, default=0
        Draws the validation hold-out only; the prediction itself is deterministic.

    Returns
    -------
    Extrapolation

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0], [0.5]]); mask = np.array([True, True, False])
    >>> knn_extrapolate(x, mask, [1.0, 3.0], k=2, weighting="mean").scores.tolist()
    [1.0, 3.0, 2.0]
    """
    x, mask, values = _scored(features, scored_mask, scored_values)
    cfg = KNNConfig(k=k, weighting=weighting)
    V.check_scalar(val_fraction, "val_fraction", (int, float), min_val=0.0, max_val=0.5)
    rng = V.check_random_state(random_state)
    t0 = time.perf_counter()
    out = np.empty(x.shape[0], dtype=np.float64)
    out[mask] = values
    if not mask.all():
        out[~mask] = _knn_predict(x[mask], values, x[~mask], cfg.k, cfg.weighting)
    t1 = time.perf_counter()
    val = _holdout(values.size, val_fraction, rng)
    rho = float("nan")
    if val.any():
        xs = x[mask]
        pred = _knn_predict(xs[~val], values[~val], xs[val], cfg.k, cfg.weighting)
        rho = _spearman(pred, values[val])
    params = {**dataclasses.asdict(cfg), "val_fraction": float(val_fraction), "index": "faiss IndexFlatL2 (exact)"}
    return Extrapolation(out, params, rho, {"predict": t1 - t0, "validate": time.perf_counter() - t1})


def _import_pyg():
    with warnings.catch_warnings():  # torch_geometric's import uses the deprecated torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from torch_geometric.nn import GCNConv
            from torch_geometric.utils import to_torch_csr_tensor, to_undirected
        except ImportError:
            raise V.TopodataInputError(
                "extrapolate='gnn' needs PyTorch Geometric: pip install 'topodata[gnn]' (torch-geometric)"
            ) from None
    return GCNConv, to_undirected, to_torch_csr_tensor


def gnn_extrapolate(
    features: Any,
    labels: Any,
    scored_mask: Any,
    scored_values: Any,
    *,
    k: int = 10,
    epochs: int = 100,
    hidden: tuple = (512, 256),
    dropout: float = 0.5,
    lr: float = 1e-3,
    val_fraction: float = 0.1,
    random_state: Any = 0,
    device: str = "auto",
    progress: bool = False,
) -> Extrapolation:
    """Predict the unscored samples' scores with a GCN on the kNN graph of all samples.

    The graph is :func:`topodata.neighbors.knn` (``k`` neighbours per sample besides itself),
    made undirected, with edge weight ``sqrt(exp(-d / d̄))`` (``d̄`` = mean neighbour distance,
    so the weights do not vanish at large feature scales). Node features are the standardised
    embedding ⊕ the one-hot label; three ``GCNConv`` layers (→ ``hidden[0]`` → ``hidden[1]`` →
    1) with ReLU and dropout; Adam on the squared error of the standardised known scores of
    ``1 − val_fraction`` of the scored samples. Training is full-batch on the whole graph
    (each epoch = one step; the paper's neighbour sampling needs pyg-lib / torch-sparse).

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    scored_mask, scored_values
        As in :func:`knn_extrapolate`.
    k, epochs, hidden, dropout, lr, val_fraction, device
        See :class:`GNNConfig`.
    random_state : None, int or numpy Generator, default=0
        Seeds the hold-out, the weight initialisation and the dropout masks (explicit
        ``torch.Generator``; no global seeding). On the CPU the result is reproducible; CUDA
        scatter-adds may differ in the last bits.
    progress : bool, default=False
        A tqdm bar over the epochs.

    Returns
    -------
    Extrapolation
        ``validation_spearman`` on the held-back scored samples.
    """
    import torch

    from .neighbors import knn
    from .nn.loop import resolve_device

    x, mask, values = _scored(features, scored_mask, scored_values)
    y = V.check_labels(labels, n_samples=x.shape[0])
    cfg = GNNConfig(k=k, epochs=epochs, hidden=hidden, dropout=dropout, lr=lr, val_fraction=val_fraction,
                    device=device)
    rng = V.check_random_state(random_state)
    GCNConv, to_undirected, to_csr = _import_pyg()
    dev = resolve_device(cfg.device)
    n = x.shape[0]
    t0 = time.perf_counter()

    # --- graph: the FAISS kNN graph of all samples, undirected, weights sqrt(exp(-d / mean d))
    kk = min(int(cfg.k) + 1, n)
    nb, dist = knn(x, kk, random_state=V.derive_seed(rng))
    src = np.repeat(np.arange(n), kk - 1)
    dst = nb[:, 1:].ravel()
    d = dist[:, 1:].ravel().astype(np.float64)
    scale = float(d.mean()) if d.size and d.mean() > 0 else 1.0
    weight = np.sqrt(np.exp(-d / scale))
    edge_index, edge_weight = to_undirected(
        torch.as_tensor(np.stack([src, dst])), torch.as_tensor(weight, dtype=torch.float32), num_nodes=n,
        reduce="max",
    )
    n_edges = int(edge_index.shape[1])
    # a sparse adjacency: GCNConv then aggregates with one sparse-dense product (six times faster on
    # the CPU than materialising a message per edge); symmetric, so it is its own transpose
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the product used here is stable
        warnings.simplefilter("ignore", UserWarning)
        adj = to_csr(edge_index, edge_weight, size=(n, n))
    t_graph = time.perf_counter()

    # --- node features and targets
    std = x.std(axis=0)
    xs = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    classes = np.unique(y)
    onehot = (y[:, None] == classes[None, :]).astype(np.float32)
    feats = torch.as_tensor(np.hstack([xs, onehot]).astype(np.float32))
    scored = np.flatnonzero(mask)
    val = _holdout(scored.size, cfg.val_fraction, rng)
    train_idx, val_idx = scored[~val], scored[val]
    mu, sd = float(values[~val].mean()), float(values[~val].std())
    sd = sd if sd > 0 else 1.0
    target = torch.as_tensor((values[~val] - mu) / sd, dtype=torch.float32)

    # --- model: three GCNConv layers, initialised from an explicit generator
    seed = V.derive_seed(rng)
    gen = torch.Generator().manual_seed(seed)
    widths = [feats.shape[1], *cfg.hidden, 1]
    convs = torch.nn.ModuleList(
        GCNConv(a, b, cached=True, add_self_loops=True, normalize=True) for a, b in zip(widths[:-1], widths[1:])
    )
    with torch.no_grad():
        for conv in convs:  # glorot weights (GCNConv's own scheme), zero bias, drawn from `gen`
            torch.nn.init.xavier_uniform_(conv.lin.weight, generator=gen)
            conv.bias.zero_()
    convs = convs.to(dev)
    feats, adj = feats.to(dev), adj.to(dev)
    target = target.to(dev)
    train_t = torch.as_tensor(train_idx, device=dev)
    drop_gen = torch.Generator(device=dev).manual_seed(seed + 1)
    p = float(cfg.dropout)

    def forward(training: bool):
        h = feats
        for i, conv in enumerate(convs):
            h = conv(h, adj)
            if i < len(convs) - 1:
                h = torch.relu(h)
                if training and p > 0:  # dropout with an explicit generator (F.dropout draws from the global RNG)
                    keep = torch.rand(h.shape, generator=drop_gen, device=dev) >= p
                    h = h * keep / (1.0 - p)
        return h.squeeze(1)

    opt = torch.optim.Adam(convs.parameters(), lr=float(cfg.lr))
    losses = []
    from tqdm.auto import tqdm

    for _ in tqdm(range(int(cfg.epochs)), desc="gnn extrapolation", disable=not progress, leave=False):
        convs.train()
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(forward(True)[train_t], target)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    t_train = time.perf_counter()
    convs.eval()
    with torch.no_grad():
        pred = forward(False).double().cpu().numpy() * sd + mu
    out = np.empty(n, dtype=np.float64)
    out[mask] = values
    out[~mask] = pred[~mask]
    rho = _spearman(pred[val_idx], values[val]) if val.any() else float("nan")
    params = {**dataclasses.asdict(cfg), "hidden": list(cfg.hidden), "device": str(dev),
              "training": "full-batch (no neighbour sampling)", "edge_weight": "sqrt(exp(-d / mean kNN distance))",
              "n_edges": n_edges, "final_train_loss": losses[-1]}
    return Extrapolation(out, params, rho, {"graph": t_graph - t0, "train": t_train - t_graph,
                                            "predict": time.perf_counter() - t_train})


# ---------------------------------------------------------------------------------------------
# the select() stage


def _subset_dynamics(dynamics, idx):
    if dynamics is None:
        return None
    return dataclasses.replace(dynamics, correct=dynamics.correct[:, idx], margin=dynamics.margin[:, idx],
                               el2n=dynamics.el2n[:, idx])


def score_and_extrapolate(
    spec: Any,
    features: np.ndarray,
    labels: np.ndarray,
    *,
    rate: float,
    fraction: float,
    extrapolator: str,
    params: Mapping[str, Any],
    rng: np.random.Generator,
    dynamics: Any = None,
    method_params: Mapping[str, Any] | None = None,
):
    """Run a method on the scored fraction only, then extrapolate its scores to every sample.

    Parameters
    ----------
    spec : MethodSpec
        The method (one of :data:`EXTRAPOLABLE`; checked by :func:`check_extrapolation`).
    features, labels : ndarray
        Every sample's (validated) features and labels.
    rate : float
        The selection's rate; the method sees class budgets at the same rate on the fraction
        (only its scores are used, so they matter only to methods that also select).
    fraction, extrapolator, params
        As returned by :func:`check_extrapolation`.
    rng : numpy Generator
        Draws the scored subset (when the dynamics do not fix it), the method's and the
        extrapolator's seeds.
    dynamics : TrainingDynamics, optional
        Recorded on all samples (NaN where unseen); subset to the scored ones for the method.

    Returns
    -------
    MethodOutput
        ``scores`` for every sample, ``suspects`` (when the method flags some) extrapolated by a
        plain kNN majority, ``params`` with an ``extrapolation`` block, ``timings_s`` with the
        method's stages plus ``extrapolate``; no ``indices`` and no plot extras.
    """
    from .scores import MethodOutput

    t0 = time.perf_counter()
    scored = scored_samples(labels, fraction, dynamics=dynamics, random_state=rng)
    ys = labels[scored]
    classes, counts = np.unique(ys, return_counts=True)  # proportional budgets, as select's default
    budgets = {int(c): int(b) for c, b in zip(classes, largest_remainder(counts, n_kept(ys.size, rate)))}
    out = spec.load()(features[scored], ys, budgets=budgets, rng=rng,
                      dynamics=_subset_dynamics(dynamics, scored), **dict(method_params or {}))
    t_method = time.perf_counter() - t0
    mask = np.zeros(labels.shape[0], dtype=bool)
    mask[scored] = True
    values = np.asarray(out.scores, dtype=np.float64)
    seed = V.derive_seed(rng)
    t1 = time.perf_counter()
    if extrapolator == "knn":
        ex = knn_extrapolate(features, mask, values, **params, random_state=seed)
    else:
        ex = gnn_extrapolate(features, labels, mask, values, **params, random_state=seed)
    suspects = None
    if out.suspects is not None:  # the flagged share per class must hold for all samples, not only the fraction
        flag = np.asarray(out.suspects, dtype=np.float64)
        suspects = knn_extrapolate(features, mask, flag, k=10, weighting="mean", val_fraction=0.0).scores > 0.5
    t_ex = time.perf_counter() - t1
    info = {
        "score_fraction": fraction,
        "n_scored": int(scored.size),
        "scored_set": "the proxy's training set (samples with dynamics)"
        if dynamics is not None and not dynamics.seen.any(axis=0).all() else "seeded class-stratified draw",
        "extrapolator": extrapolator,
        "params": ex.params,
        "validation_spearman": ex.validation_spearman,
        "suspects": "kNN majority of 10 scored neighbours" if suspects is not None else None,
        "method_selection": "ignored: the subset comes from the extrapolated scores" if out.indices is not None else None,
    }
    timings = {**out.timings_s, "scored_fraction": t_method, "extrapolate": t_ex,
               **{f"extrapolate.{k}": v for k, v in ex.timings_s.items()}}
    return MethodOutput(scores=ex.scores, params={**out.params, "extrapolation": info}, timings_s=timings,
                        suspects=suspects, contested=out.contested)  # a share: the scored fraction estimates it
