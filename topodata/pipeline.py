"""From a dataset spec (or arrays, or files) to a selection in one call: load → embed → select.

:func:`select_dataset` is the orchestration that ``topodata select`` and ``topodata bench`` share:
it checks every option first (rate, the method's hyper-parameters), then loads the dataset, the
cached embedding (:func:`topodata.embed.embed_cached`) and its training dynamics, optionally puts
seeded noise on the features, and calls :func:`topodata.select.select`, forwarding its keywords
unchanged. The manifest gains the embedding settings and the seconds spent loading and embedding.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import _validation as V
from ._engine import check_engine, use_engine
from ._io import load_npy
from ._meta import versions
from .data import load_dataset
from .extrapolate import check_extrapolation
from .scores import check_method_params, get_method, method_config  # noqa: F401 (re-exported)
from .dedup import image_duplicate_groups
from .select import dedup_setting, select

DEDUP_SPACES = ("auto", "images", "features")

__all__ = [
    "select_dataset",
    "load_embedding",
    "prune_dataset",
    "method_config",
    "check_method_params",
    "add_feature_noise",
    "noise_rng",
    "run_manifest",
    "DEFAULT_EMBEDDER",
    "MAIN_METHOD",
]

MAIN_METHOD = "topoprune"  # the default method; its CLI options carry no prefix

# The proxy model whose features a dataset is scored on, unless ``model=`` says otherwise.
DEFAULT_EMBEDDER = {"digits": "mlp", "mnist": "smallcnn", "fashion-mnist": "smallcnn",
                    "cifar10": "resnet18", "cifar100": "resnet18"}

_PathLike = (str, os.PathLike)


# ---------------------------------------------------------------------------------------------
# checks that run before any data is loaded


# ---------------------------------------------------------------------------------------------
# feature noise (the bench's robustness experiment)


def add_feature_noise(features: Any, scale: float, *, random_state: Any = 0) -> np.ndarray:
    """Gaussian noise on an embedding, relative to its spread.

    ``σ = scale · mean_j std(features[:, j])``: one σ for all dimensions, so the noise is isotropic
    (as a perturbed embedder would be) and its size is comparable across embedders of any scale.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
    scale : float >= 0
        0.1, 0.25, 0.5 in the noise pipeline.
    random_state : None, int or numpy Generator, default=0

    Returns
    -------
    ndarray of float32, shape (n_samples, n_features)

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(1000, 4))
    >>> round(float((add_feature_noise(x, 0.5, random_state=1) - x).std()), 1)
    0.5
    """
    x = V.check_features(features)
    V.check_scalar(scale, "scale", (int, float), min_val=0.0)
    rng = V.check_random_state(random_state)
    sigma = float(scale) * float(x.std(axis=0).mean())
    return V.as_float32(x + rng.normal(scale=sigma, size=x.shape))


def noise_rng(seed: int, scale: float) -> np.random.Generator:
    """The generator of the feature noise of selection seed ``seed`` at ``scale``.

    One draw per (seed, scale), shared by every method, so methods are compared on the same noisy
    embedding; seeded from the pair rather than from the selection's own stream, so the draws of
    different scales are independent.
    """
    return np.random.default_rng([int(seed), int(round(scale * 1_000_000)), 0x6E6F697365])


# ---------------------------------------------------------------------------------------------
# manifests


def run_manifest(fields: Mapping[str, Any], *, timings_s: Mapping[str, float] | None = None) -> dict[str, Any]:
    """A run's manifest: ``fields`` plus the library versions (and seconds per stage, if given).

    The one place where every command's manifest gets its ``versions`` block, so a bug report
    shows the same libraries whichever command wrote it.
    """
    out = {**fields, "versions": versions()}
    if timings_s is not None:
        out["timings_s"] = {k: float(v) for k, v in timings_s.items()}
    return out


# ---------------------------------------------------------------------------------------------
# the pipeline


def select_dataset(
    spec: str | None = None,
    *,
    rate: float,
    method: str | None = None,
    random_state: int = 0,
    features: Any = None,
    labels: Any = None,
    scores: Any = None,
    embedding: Any = None,
    model: str | None = None,
    proxy_fraction: float | None = None,
    embed_seed: int | None = None,
    epochs: int | None = None,
    device: str | None = None,
    root: str | os.PathLike | None = None,
    embed_params: Mapping[str, Any] | None = None,
    feature_noise: float = 0.0,
    dedup_space: str = "auto",
    progress: bool = True,
    **select_kwargs: Any,
):
    """Select the samples to keep from a dataset spec, from arrays or files, or from given scores.

    Exactly one source: ``spec`` (the features come from the cached proxy embedding, or only the
    labels are loaded when the method reads none), or ``features`` with ``labels``, or ``scores``
    with ``labels`` or ``spec``. Every check (rate, the method's options, the combination of
    sources) runs before anything is loaded or trained.

    Parameters
    ----------
    spec : str, optional
        Dataset spec of :func:`topodata.data.load_dataset` (``'digits'``, ``'fashion-mnist'``,
        ``'npz:PATH'``, ...).
    rate : float in (0, 1)
        Fraction *removed* (see :func:`topodata.select.select`).
    method : str, optional
        Default ``'topoprune'``; not with ``scores``.
    random_state : int, default=0
        Seed of the selection (and of the feature noise).
    features, labels, scores : array-like or path to a ``.npy`` file, optional
        Arrays of shape (n_samples, n_features), (n_samples,) and (n_samples,). A path is read
        here and named in the manifest's ``dataset`` (``embeddings:PATH``, ``labels:PATH``).
    embedding : EmbedResult, optional
        The embed stage's result for ``spec`` and these embedding settings, already loaded: a
        caller that selects many times from one embedding (the bench) loads it once.
    model : str, optional
        Proxy model of the embed stage; default per dataset (``DEFAULT_EMBEDDER``, else
        ``'smallcnn'``).
    proxy_fraction : float in (0, 1], optional
        Fraction of the training split the proxy trains on; default 1.0.
    embed_seed : int, optional
        Seed of the proxy training, kept apart from ``random_state`` so that selection seeds
        share one cached embedding; default 0.
    epochs, device, root : optional
        Proxy epochs (default: the model's), device (default ``'auto'``) and the folder of
        torchvision dataset files.
    embed_params : mapping, optional
        Further :func:`topodata.embed.embed_cached` options (``batch_size``, ``lr``, ...).
    feature_noise : float >= 0, default=0.0
        Scale of Gaussian noise added to the features before scoring (see
        :func:`add_feature_noise`), drawn from :func:`noise_rng` ``(random_state, feature_noise)``.
    dedup_space : {'auto', 'images', 'features'}, default='auto'
        Where near-duplicates are looked for when ``dedup`` is on (TopoPrune's default): in the
        pixels of an image dataset (:func:`topodata.dedup.image_duplicate_groups`; a float
        ``dedup`` is then a root-mean-square pixel difference) or in the features. ``'auto'``:
        the pixels when ``spec`` names a dataset of images, else the features.
    progress : bool, default=True
        Progress bars and cache messages of the load and embed stages.
    **select_kwargs
        Every further keyword goes to :func:`topodata.select.select` unchanged (``strategy``,
        ``beta``, ``sampler``, ``method_params``, ``score_fraction``, ...). ``dataset`` names arrays in
        the manifest. With ``score_fraction`` and a spec, the proxy trains on that fraction
        (``proxy_fraction`` defaults to it) and the method scores exactly the proxy's training set.

    Returns
    -------
    SelectionResult
        As :func:`topodata.select.select`; the manifest also holds ``embedding`` (model, proxy
        settings, cache entry, proxy accuracy) when the embed stage ran, ``feature_noise`` when
        noise was added, and ``timings_s`` starts with ``load``/``embed``. ``extras['labels']``
        holds the labels (for plots).

    Raises
    ------
    TopodataInputError
        On conflicting sources, a bad rate or method option (before any loading), an unreadable
        file, or anything :func:`topodata.select.select` refuses.

    Warns
    -----
    UserWarning
        When embedding options (or ``feature_noise``) are given but no embed stage runs (arrays,
        scores, or a method that reads no features) or no features are scored.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(100, 4)); y = np.repeat([0, 1], 50)
    >>> res = select_dataset(features=x, labels=y, rate=0.9, method="moderate")
    >>> len(res.indices), res.manifest["dataset"]
    (10, 'arrays')
    """
    # --- checks: every option before anything is loaded or trained
    _check_sources(spec, features, labels, scores, method, embedding)
    if spec is not None and "dataset" in select_kwargs:
        raise V.TopodataInputError("dataset= names arrays in the manifest; with a spec the spec is the name")
    V.check_rate(rate)
    V.check_options(dedup_space, "dedup_space", DEDUP_SPACES)
    check_engine(select_kwargs.get("engine", "inprocess"), select_kwargs.get("ray_address"))
    V.check_scalar(feature_noise, "feature_noise", (int, float), min_val=0.0)
    if feature_noise and (isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer))):
        raise TypeError(f"feature_noise needs an int random_state (the noise is seeded from it); got {random_state!r}")
    if scores is None:
        method = method or MAIN_METHOD
        select_kwargs["method_params"] = check_method_params(method, select_kwargs.get("method_params"))
    proxy_fraction = _extrapolation_proxy(spec, method, scores, proxy_fraction, select_kwargs)
    embed = _EmbedSettings(model, proxy_fraction, embed_seed, _embed_options(epochs, device, root, embed_params))

    # one engine for the embed stage (Ray Data extraction under 'ray') and the selection: a Ray started
    # here serves both and is shut down at the end
    with use_engine(select_kwargs.get("engine", "inprocess"), ray_address=select_kwargs.get("ray_address")):
        # --- load (files, labels) or embed (cached proxy features and dynamics)
        inputs = _inputs(spec, features, labels, scores, embedding, method, embed, progress)
        x = inputs.features
        if feature_noise:
            if x is None or np.ndim(x) != 2 or np.shape(x)[1] == 0:
                V.warn("feature_noise ignored: no features are scored")
            else:
                x = add_feature_noise(x, feature_noise, random_state=noise_rng(random_state, feature_noise))

        # --- near-duplicates of an image dataset come from its pixels, not from the class-trained features
        image_dedup = None
        if spec is not None and dedup_space != "features":
            t0 = time.perf_counter()
            image_dedup = _image_dedup(spec, root, select_kwargs.get("dedup"), None if scores is not None else method,
                                       dedup_space, random_state, progress)
            if image_dedup is not None:
                select_kwargs["dedup"] = image_dedup[0]
                inputs.timings["dedup_images"] = time.perf_counter() - t0

        # --- select, and the manifest of the whole call
        select_kwargs.setdefault("dataset", inputs.name)
        result = select(x, inputs.labels, rate=rate, method=None if scores is not None else method,
                        random_state=random_state, dynamics=inputs.dynamics, scores=inputs.scores, **select_kwargs)
    result.manifest["timings_s"] = {**inputs.timings, **result.manifest["timings_s"]}
    if image_dedup is not None:
        result.manifest["params"]["dedup"].update(space="images", threshold=image_dedup[1], threshold_rule=image_dedup[2])
    if inputs.embedding is not None:
        result.manifest["embedding"] = inputs.embedding
    if feature_noise and x is not inputs.features:
        result.manifest["feature_noise"] = float(feature_noise)
    result.extras = {**(result.extras or {}), "labels": inputs.labels}
    return result


def _image_dedup(spec, root, dedup, method, space, random_state, progress=False):
    """``(groups, threshold, rule)`` of the dataset's image copies, or None (dedup off, or not images)."""
    V.check_options(space, "dedup_space", DEDUP_SPACES)
    setting = dedup_setting(dedup, method)
    if setting is None or isinstance(setting, np.ndarray):
        return None
    seed = int(random_state) if isinstance(random_state, (int, np.integer)) else 0
    groups, thr, shape = _image_groups(spec, None if root is None else str(root), setting, seed, progress)
    if groups is None:
        if space == "images":
            raise V.TopodataInputError(f"dedup_space='images' needs a dataset of images; {spec!r} has inputs of shape "
                                       f"{shape[1:]}")
        return None
    rule = "given" if setting != "auto" else "auto: factor x median aligned pixel difference to the k-th candidate"
    return groups, thr, rule


@functools.lru_cache(maxsize=4)  # the bench selects many times from one dataset in one process
def _image_groups(spec: str, root: str | None, threshold, seed: int, progress: bool):
    """``(groups, threshold, input shape)``; groups None when the inputs are not images."""
    images = load_dataset(spec, root=root, progress=False).x_train
    if images.ndim != 4:
        return None, None, images.shape
    groups, thr = image_duplicate_groups(images, threshold=threshold, random_state=seed, progress=progress)
    groups.setflags(write=False)
    return groups, thr, images.shape


def _extrapolation_proxy(spec, method, scores, proxy_fraction, select_kwargs) -> float | None:
    """Check the score-extrapolation options; with a spec, the proxy trains on the scored fraction.

    ``score_fraction=F`` implies ``proxy_fraction=F`` (the scored set is then the proxy's training
    set, where the training dynamics exist); ``proxy_fraction=1.0`` keeps a full proxy and scores
    a seeded fraction of it; any other proxy fraction is refused.
    """
    extrap = check_extrapolation(
        method if scores is None else None, select_kwargs.get("score_fraction"), select_kwargs.get("extrapolate"),
        select_kwargs.get("extrapolate_params"), method_params=select_kwargs.get("method_params"),
        scores_given=scores is not None,
    )
    if extrap is None or spec is None:
        return proxy_fraction
    if proxy_fraction is None:
        return extrap[0]
    if proxy_fraction not in (1.0, extrap[0]):
        raise V.TopodataInputError(
            f"proxy_fraction={proxy_fraction} with score_fraction={extrap[0]}: the scored set is the proxy's "
            "training set; leave proxy_fraction unset (= score_fraction) or 1.0"
        )
    return proxy_fraction


@dataclasses.dataclass
class _EmbedSettings:
    model: str | None
    proxy_fraction: float | None
    embed_seed: int | None
    options: dict[str, Any]  # further embed_cached keywords

    def given(self) -> list[str]:
        """Names of the settings the caller set (``root`` aside: it also serves the label load)."""
        named = [k for k in ("model", "proxy_fraction", "embed_seed") if getattr(self, k) is not None]
        return named + [k for k in self.options if k != "root"]


@dataclasses.dataclass
class _Inputs:
    features: np.ndarray | None
    labels: np.ndarray
    scores: np.ndarray | None
    dynamics: Any
    name: str  # the manifest's ``dataset``
    embedding: dict[str, Any] | None  # the manifest's ``embedding`` block, when the embed stage ran
    timings: dict[str, float]


def _inputs(spec, features, labels, scores, embedding, method, embed: _EmbedSettings, progress) -> _Inputs:
    """The arrays select() needs, from files/arrays, the dataset's labels, or the embed stage."""
    t0 = time.perf_counter()
    root = embed.options.get("root")
    if features is not None or scores is not None:
        _warn_unused(embed, embedding, "the features or scores are given")
        x, y, s, name = _arrays(spec, features, labels, scores, root, progress)
        return _Inputs(x, y, s, None, name, None, {"load": time.perf_counter() - t0})
    if embedding is None and not get_method(method).needs_features:
        _warn_unused(embed, None, f"method {method!r} reads no features")
        y = load_dataset(spec, root=root, progress=progress).y_train
        return _Inputs(np.empty((y.shape[0], 0)), y, None, None, spec, None, {"load": time.perf_counter() - t0})
    model = embed.model or DEFAULT_EMBEDDER.get(spec.split(":")[0], "smallcnn")
    proxy_fraction = 1.0 if embed.proxy_fraction is None else embed.proxy_fraction
    embed_seed = 0 if embed.embed_seed is None else embed.embed_seed
    timings = {}
    if embedding is None:
        embedding = load_embedding(spec, model=model, proxy_fraction=proxy_fraction, embed_seed=embed_seed,
                                   progress=progress, embed_params=embed.options)
        timings["embed"] = time.perf_counter() - t0
    cache = getattr(embedding, "cache_path", None)
    info = {"model": model, "proxy_fraction": proxy_fraction, "embed_seed": embed_seed,
            "cache": str(cache) if cache else None,
            "proxy_test_accuracy": embedding.manifest.get("proxy_test_accuracy")}
    return _Inputs(embedding.features, embedding.labels, None, embedding.dynamics, spec, info, timings)


def load_embedding(
    spec: str,
    *,
    model: str | None = None,
    proxy_fraction: float | None = None,
    embed_seed: int | None = None,
    progress: bool = True,
    embed_params: Mapping[str, Any] | None = None,
):
    """The embed stage: :func:`topodata.embed.embed_cached` with this module's defaults.

    Parameters are those of :func:`select_dataset` (``model`` defaults per dataset,
    ``proxy_fraction`` to 1.0, ``embed_seed`` to 0); ``embed_params`` are further
    ``embed_cached`` options (``epochs``, ``device``, ``root``, ``batch_size``, ...).

    Returns
    -------
    EmbedResult
    """
    from .embed import embed_cached  # imports torch: only when an embedding is made or loaded

    return embed_cached(
        spec, model=model or DEFAULT_EMBEDDER.get(spec.split(":")[0], "smallcnn"),
        proxy_fraction=1.0 if proxy_fraction is None else proxy_fraction,
        random_state=0 if embed_seed is None else embed_seed, progress=progress, **dict(embed_params or {}),
    )


def _check_sources(spec, features, labels, scores, method, embedding) -> None:
    """Exactly one source of data, each with what it needs."""
    if scores is not None:
        if method is not None or features is not None or embedding is not None:
            raise V.TopodataInputError("scores replace the method: give them without method, features or embedding")
        if (spec is None) == (labels is None):
            raise V.TopodataInputError("scores need the labels: give exactly one of labels or a dataset spec")
        return
    if (spec is None) == (features is None):
        raise V.TopodataInputError("give exactly one of a dataset spec or features with labels")
    if features is not None and labels is None:
        raise V.TopodataInputError("features need labels")
    if spec is not None and labels is not None:
        raise V.TopodataInputError("labels come from the dataset spec; give labels only with features or scores")
    if embedding is not None and spec is None:
        raise V.TopodataInputError("an embedding needs the dataset spec it was computed from")
    if spec is not None and not isinstance(spec, str):
        raise TypeError(f"spec must be a dataset spec string; got {type(spec).__name__}")


def _embed_options(epochs, device, root, embed_params) -> dict[str, Any]:
    opts = dict(embed_params or {})
    for key, value in (("epochs", epochs), ("device", device), ("root", root)):
        if value is None:
            continue
        if key in opts:
            raise V.TopodataInputError(f"{key} is given twice: as {key}= and in embed_params")
        opts[key] = value
    return opts


def _maybe_load(value: Any, what: str) -> Any:
    if isinstance(value, _PathLike):
        return load_npy(value, what)
    return value


def _arrays(spec, features, labels, scores, root, progress):
    """Features, labels, scores (None where not given) and the manifest's dataset name, from arrays or files."""
    x = _maybe_load(features, "features")
    s = _maybe_load(scores, "scores")
    if labels is not None:
        y = _maybe_load(labels, "labels")
    else:
        y = load_dataset(spec, root=root, progress=progress).y_train
    if isinstance(features, _PathLike):
        name = f"embeddings:{features}"
    elif scores is not None:
        name = spec if spec is not None else f"labels:{labels}" if isinstance(labels, _PathLike) else None
    else:
        name = None
    return x, y, s, name or "arrays"


def _warn_unused(embed: _EmbedSettings, embedding, why: str) -> None:
    given = embed.given() + (["embedding"] if embedding is not None else [])
    if given:
        V.warn(f"{', '.join(given)} ignored: no embedding stage runs ({why})")


# ---------------------------------------------------------------------------------------------
# the weight side: a dataset spec to an IMP / T-IMP run


def prune_dataset(
    spec: str,
    *,
    model: str = "lenet300100",
    target_sparsity: float,
    rounds: int,
    random_state: int = 0,
    root: str | os.PathLike | None = None,
    progress: bool = True,
    **pruning_kwargs: Any,
) -> tuple[Any, dict[str, Any]]:
    """Load ``spec``, build a fresh ``model`` and run :func:`topodata.weights.iterative_pruning` on it.

    Parameters
    ----------
    spec : str
        Dataset spec of :func:`topodata.data.load_dataset`.
    model : str, default='lenet300100'
        A name of ``topodata.nn.MODELS``; initialised from a seed derived from ``random_state``.
    target_sparsity : float in (0, 1)
    rounds : int >= 1
    random_state : int, default=0
        Seed of the initialisation and of every training.
    root : path, optional
        Folder of torchvision dataset files.
    progress : bool, default=True
    **pruning_kwargs
        Further :func:`topodata.weights.iterative_pruning` keywords (``mode``, ``scope``,
        ``epochs``, ``rewind_step``, ``conv``, ``fit_params``, ``device``), forwarded unchanged.

    Returns
    -------
    run : PruningRun
        The per-round record and the final pruned model.
    manifest : dict
        Dataset, model, seed, input shape, class count, the run's parameters, layers, versions,
        seconds and the last round's numbers.
    """
    if not isinstance(target_sparsity, (int, float)) or not 0.0 < target_sparsity < 1.0:
        raise V.TopodataInputError(f"target_sparsity must be in (0, 1); got {target_sparsity}")
    from .nn import build_model  # torch: imported when a network is built
    from .weights import iterative_pruning

    t0 = time.perf_counter()
    ds = load_dataset(spec, root=root, progress=progress)
    rng = V.check_random_state(random_state)
    net = build_model(model, ds.input_shape, ds.n_classes, random_state=V.derive_seed(rng))
    run = iterative_pruning(net, ds.x_train, ds.y_train, ds.x_test, ds.y_test, target_sparsity=target_sparsity,
                            rounds=rounds, random_state=rng, progress=progress, **pruning_kwargs)
    manifest = run_manifest({
        "dataset": spec, "model": model, "seed": random_state, "input_shape": list(ds.input_shape),
        "n_classes": int(ds.n_classes), "params": run.params, "layers": run.layer_names,
        "seconds": time.perf_counter() - t0,
        "final": {k: run.rounds[-1][k] for k in ("sparsity", "test_accuracy", "np_mean", "tree_kept")},
    })
    return run, manifest
