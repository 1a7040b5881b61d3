"""Judge a selection: train a fresh model on the kept samples only and evaluate it on the test split.

The protocol is the one the coreset literature uses to compare pruning methods fairly: a *fixed
number of optimiser steps*, independent of the subset size (so a 10% subset is revisited ten
times as often as the full set, rather than getting ten times less compute), SGD with Nesterov
momentum under a one-cycle schedule, the dataset's standard augmentation, a seeded initialisation
and a seeded data order. It is one call of :func:`topodata.nn.fit` with ``indices=``, so the
kept samples are drawn straight from the full training array (no copy) and the index space stays
the one ``topodata select`` writes.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from .. import _validation as V
from ..data import load_dataset
from ..select import load_indices  # the index contract lives with select

# torch, the model zoo and scikit-learn are imported on use (start-up time of the CLI).

__all__ = ["train_on_subset", "probe_on_subset", "load_indices", "DEFAULT_STEPS"]

# Step budget of `topodata train` and of `train_on_subset` when none is given. Fashion-MNIST pipelines
# set their own (see pipelines/fashion_mnist.toml for the timing behind that choice).
DEFAULT_STEPS = 1000


def train_on_subset(
    dataset: Any,
    indices: Any = None,
    *,
    model: Any = "smallcnn",
    steps: int = DEFAULT_STEPS,
    batch_size: int = 128,
    lr: float = 0.05,
    random_state: Any = 0,
    device: str = "auto",
    progress: bool = True,
    callbacks: tuple = (),
    fit_params: dict[str, Any] | None = None,
    return_model: bool = False,
):
    """Train a freshly initialised model on ``dataset``'s kept samples; evaluate on its test split.

    Parameters
    ----------
    dataset : str or topodata.data.Dataset
        A spec for :func:`topodata.data.load_dataset` (``"digits"``, ``"fashion-mnist"`` …) or an
        already loaded dataset (load once when training many subsets).
    indices : array-like, path or None, default=None
        The kept samples (see :func:`load_indices`); ``None`` trains on the whole training split,
        the full-data reference.
    model : str or torch.nn.Module, default='smallcnn'
        A name for :func:`topodata.embed.build_model`, initialised from ``random_state``; or a
        module, which is trained in place.
    steps : int, default=DEFAULT_STEPS
        Optimiser steps, whatever the subset size (the comparison is at equal compute).
    batch_size : int, default=128
        Capped by ``fit`` at the subset size for tiny subsets.
    lr : float, default=0.05
        Peak learning rate of the one-cycle schedule.
    random_state : None, int or numpy Generator, default=0
        Seeds the initialisation and, separately, the data order and augmentation.
    device : {'auto', 'cpu', 'cuda', ...}, default='auto'
        ``auto`` is ``cuda`` when present.
    progress : bool, default=True
        Show a progress bar over steps.
    callbacks : tuple, default=()
        Training callbacks (``on_batch(epoch=, step=, indices=, logits=, targets=)``), passed to ``fit``.
    fit_params : dict, optional
        More options for :func:`topodata.train.fit` (``weight_decay``, ``augment``, ``optimizer`` …).
        By default the dataset's own augmentation (``Dataset.augment``) is used.
    return_model : bool, default=False
        Also return the trained model.

    Returns
    -------
    metrics : dict
        ``accuracy`` and ``loss`` on the test split, ``steps``, ``seconds`` (training wall time),
        ``n_train`` (kept samples), and the settings used (``model``, ``seed``, ``batch_size``,
        ``lr``, ``device``, ``dataset``).
    model : torch.nn.Module
        Only with ``return_model=True``.

    Raises
    ------
    TopodataInputError
        Bad indices (out of range, repeated, not 1-D integers), an unknown model name, a dataset
        without a test split, or a bad hyper-parameter.
    FileNotFoundError
        An indices path that does not exist.

    Examples
    --------
    >>> from topodata.train.subset import train_on_subset
    >>> m = train_on_subset("digits", range(0, 1433, 3), model="mlp", steps=20, progress=False)
    >>> m["n_train"], m["steps"]
    (478, 20)
    """
    import torch

    from ..nn import MODELS, build_model, evaluate, fit

    if isinstance(model, str):
        V.check_options(model, "model", tuple(MODELS))
    elif not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a model name or a torch.nn.Module; got {type(model).__name__}")
    V.check_scalar(steps, "steps", (int, np.integer), min_val=1)
    V.check_scalar(batch_size, "batch_size", (int, np.integer), min_val=1)
    V.check_scalar(lr, "lr", (int, float), min_val=0.0, include_min=False)
    fit_params = dict(fit_params or {})
    clash = {"steps", "epochs", "indices", "random_state", "batch_size", "lr", "device", "progress",
             "callbacks"} & set(fit_params)
    if clash:
        raise V.TopodataInputError(f"fit_params must not set {sorted(clash)}; use the arguments of the same name")
    rng = V.check_random_state(random_state)
    seed_repr = random_state if isinstance(random_state, (int, np.integer)) else None
    init_seed, fit_seed = V.derive_seed(rng), V.derive_seed(rng)

    ds = _as_dataset(dataset)
    if ds.n_test == 0:
        raise V.TopodataInputError(
            f"dataset {ds.name!r} has no test split to evaluate on; add x_test/y_test to the npz"
        )
    idx = None if indices is None else load_indices(indices, n_total=ds.n_train)
    name = model if isinstance(model, str) else type(model).__name__
    net = build_model(model, ds.input_shape, ds.n_classes, random_state=init_seed) if isinstance(model, str) else model
    fit_params.setdefault("augment", getattr(ds, "augment", "auto"))

    t0 = time.perf_counter()
    fit(net, ds.x_train, ds.y_train, steps=int(steps), batch_size=int(batch_size), lr=float(lr),
        device=device, random_state=fit_seed, progress=progress, callbacks=tuple(callbacks), indices=idx,
        **fit_params)
    seconds = time.perf_counter() - t0
    scores = evaluate(net, ds.x_test, ds.y_test, device=device)
    dev = next(net.parameters()).device.type if any(True for _ in net.parameters()) else "cpu"
    metrics = {
        "accuracy": float(scores["accuracy"]),
        "loss": float(scores["loss"]),
        "steps": int(steps),
        "seconds": float(seconds),
        "n_train": int(ds.n_train if idx is None else idx.size),
        "n_test": int(ds.n_test),
        "model": name,
        "seed": seed_repr,
        "batch_size": int(batch_size),
        "lr": float(lr),
        "device": dev,
        "dataset": ds.name,
        "fit_params": fit_params,
    }
    return (metrics, net) if return_model else metrics


def probe_on_subset(
    features: Any,
    labels: Any,
    features_test: Any,
    labels_test: Any,
    indices: Any = None,
    *,
    C: float = 1.0,
    max_iter: int = 200,
    random_state: Any = 0,
) -> dict[str, Any]:
    """A quick look, not the benchmark protocol: logistic regression on frozen features of the kept samples.

    Training a network per cell is what the benchmark reports; this probe only asks whether the
    kept samples still describe the classes *in the embedder's feature space*, in seconds. It
    favours selections made on the same features, so never mix its numbers with trained ones.

    Parameters
    ----------
    features, features_test : array-like of shape (n_train, n_features), (n_test, n_features)
        Embedder features of the training and the test split.
    labels, labels_test : array-like of shape (n_train,), (n_test,)
    indices : array-like, path or None
        Kept samples (see :func:`load_indices`); None uses all.
    C : float, default=1.0
        Inverse L2 strength of scikit-learn's ``LogisticRegression`` (lbfgs, multinomial).
    max_iter : int, default=200
    random_state : None, int or numpy Generator, default=0

    Returns
    -------
    dict
        ``accuracy``, ``loss`` (test log-loss), ``steps`` (lbfgs iterations), ``seconds``,
        ``n_train``, ``model`` (``"probe"``).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler

    x, y = V.check_features_labels(features, labels)
    xt = V.check_features(features_test, name="features_test")
    yt = V.check_labels(labels_test, n_samples=xt.shape[0], name="labels_test")
    if xt.shape[1] != x.shape[1]:
        raise V.TopodataInputError(
            f"features_test has {xt.shape[1]} columns but features have {x.shape[1]}; embed both splits alike"
        )
    idx = np.arange(x.shape[0]) if indices is None else load_indices(indices, n_total=x.shape[0])
    seed = V.derive_seed(V.check_random_state(random_state))
    t0 = time.perf_counter()
    scaler = StandardScaler().fit(x[idx])
    clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():  # a few iterations short of convergence is fine for a quick look
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(x[idx]), y[idx])
    seconds = time.perf_counter() - t0
    xs = scaler.transform(xt)
    proba = clf.predict_proba(xs)
    return {
        "accuracy": float((clf.classes_[proba.argmax(1)] == yt).mean()),
        "loss": float(log_loss(yt, proba, labels=clf.classes_)) if np.isin(yt, clf.classes_).all() else float("nan"),
        "steps": int(np.max(clf.n_iter_)),
        "seconds": float(seconds),
        "n_train": int(idx.size),
        "model": "probe",
    }


def _as_dataset(dataset: Any):
    if isinstance(dataset, str):
        return load_dataset(dataset)
    needed = ("x_train", "y_train", "x_test", "y_test", "n_classes", "input_shape")
    missing = [a for a in needed if not hasattr(dataset, a)]
    if missing:
        raise TypeError(
            f"dataset must be a spec string or a topodata.data.Dataset; got {type(dataset).__name__} "
            f"without {missing}"
        )
    return dataset
