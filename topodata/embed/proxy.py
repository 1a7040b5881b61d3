"""The embed stage: train a proxy model, extract penultimate features, cache them.

``embed`` trains a model from :mod:`topodata.nn.models` on the training split (or a seeded,
class-stratified fraction of it), then extracts ``model.features(x)`` for *every* training
sample and every test sample. ``embed_cached`` does the same once per configuration and loads the
result afterwards.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from .. import _validation as V
from .._io import atomic_write_files, json_bytes, user_cache_dir
from .._threads import deterministic, thread_count
from .._meta import stratified_subset, versions
from ..data import Dataset, load_dataset
from ..nn.dynamics import DynamicsRecorder, TrainingDynamics
from ..nn.loop import fit, resolve_device
from ..nn.models import MODELS, build_model
from .extract import extract

__all__ = ["EmbedResult", "embed", "embed_cached", "default_epochs", "proxy_subset", "cache_key"]

logger = logging.getLogger("topodata.embed")

CACHE_VERSION = 3  # bump when defaults, architectures or the recipe change, so old entries are not reused

# Default proxy length per model: at least ``min_epochs`` passes and ``min_steps`` optimiser steps,
# at most ``max_epochs`` passes. Big sets are bounded by the epochs, small sets (digits, a 10%
# proxy) by the steps. Measured on a 2-core CPU: see scripts/bench_embed_probe.py.
DEFAULT_LENGTH: dict[str, tuple[int, int, int]] = {  # model -> (min_epochs, min_steps, max_epochs)
    "smallcnn": (4, 400, 60),
    "mlp": (8, 400, 100),
    "lenet300100": (8, 400, 100),
    "resnet18": (15, 1500, 100),
}

MANIFEST_FILE = "manifest.json"
ARRAY_FILES = ("features", "labels", "features_test", "labels_test")


@dataclass
class EmbedResult:
    """Output of :func:`embed`.

    Attributes
    ----------
    features : ndarray of shape (n_train, feature_dim), float32
        Penultimate activations of every training sample, in the dataset's training order.
    labels : ndarray of shape (n_train,), int64
    features_test : ndarray of shape (n_test, feature_dim), float32
    labels_test : ndarray of shape (n_test,), int64
    manifest : dict
        Everything needed to reproduce the run: dataset and source, model, proxy settings, epochs,
        steps, seed, device, ``proxy_test_accuracy``, ``timings_s``, versions.
    model : FeatureModel or None
        The trained proxy (on CPU after a cache load).
    dynamics : TrainingDynamics or None
        Per-sample training dynamics of the proxy run, where recorded.
    cache_path : Path or None
        The cache entry this result was stored in or loaded from.
    from_cache : bool
        True when :func:`embed_cached` loaded it instead of training (the manifest's timings are
        then those of the run that filled the entry).
    """

    features: np.ndarray
    labels: np.ndarray
    features_test: np.ndarray
    labels_test: np.ndarray
    manifest: dict[str, Any]
    model: Any = None
    dynamics: Any = None
    cache_path: Path | None = field(default=None, repr=False)
    from_cache: bool = False

    def to_files(self, *, include_model: bool = False) -> dict[str, bytes]:
        """The files of :meth:`save` as ``{name: bytes}`` (``manifest.json`` last)."""
        files = {}
        for name in ARRAY_FILES:
            buf = io.BytesIO()
            np.save(buf, getattr(self, name), allow_pickle=False)
            files[f"{name}.npy"] = buf.getvalue()
        if self.dynamics is not None:
            with tempfile.TemporaryDirectory() as tmp:  # TrainingDynamics owns its file format
                path = Path(tmp) / "dynamics.npz"
                self.dynamics.save(path)
                files["dynamics.npz"] = path.read_bytes()
        if include_model and self.model is not None:
            buf = io.BytesIO()
            torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, buf)
            files["model.pt"] = buf.getvalue()
        files[MANIFEST_FILE] = json_bytes(self.manifest)
        return files

    def save(self, out_dir: str | os.PathLike, *, include_model: bool = False) -> list[Path]:
        """Write ``features.npy``, ``labels.npy``, ``features_test.npy``, ``labels_test.npy``,
        ``manifest.json`` (and ``dynamics.npz``, ``model.pt`` where present/asked) atomically."""
        return atomic_write_files(out_dir, self.to_files(include_model=include_model))

    @classmethod
    def load(cls, directory: str | os.PathLike, *, load_model: bool = True) -> "EmbedResult":
        """Read a directory written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            A required file is missing.
        TopodataInputError
            A file is unreadable or the arrays disagree in length.
        """
        d = Path(directory)
        try:
            manifest = json.loads((d / MANIFEST_FILE).read_text())
            arrays = {name: np.load(d / f"{name}.npy", allow_pickle=False) for name in ARRAY_FILES}
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            raise V.TopodataInputError(f"embedding directory {d} is unreadable ({exc}); delete it and embed again") from None
        if len(arrays["features"]) != len(arrays["labels"]) or len(arrays["features_test"]) != len(arrays["labels_test"]):
            raise V.TopodataInputError(f"embedding directory {d}: features and labels differ in length; embed again")
        dynamics = None
        if (d / "dynamics.npz").exists():
            dynamics = TrainingDynamics.load(d / "dynamics.npz")
        model = None
        if load_model and (d / "model.pt").exists() and manifest.get("model") in MODELS:
            model = build_model(manifest["model"], tuple(manifest["input_shape"]), manifest["n_classes"])
            try:
                model.load_state_dict(torch.load(d / "model.pt", map_location="cpu", weights_only=True))
            except (RuntimeError, OSError) as exc:  # another architecture than this version builds
                raise V.TopodataInputError(
                    f"embedding directory {d}: model.pt does not fit the current {manifest['model']!r} "
                    f"({str(exc).splitlines()[0]}); embed again"
                ) from None
            model.eval()
        return cls(**arrays, manifest=manifest, model=model, dynamics=dynamics, cache_path=d)


def default_epochs(model: str, n_proxy: int, batch_size: int) -> int:
    """Epochs used when ``epochs=None``: see :data:`DEFAULT_LENGTH`."""
    min_epochs, min_steps, max_epochs = DEFAULT_LENGTH[model]
    per_epoch = math.ceil(n_proxy / batch_size)
    return int(min(max_epochs, max(min_epochs, math.ceil(min_steps / per_epoch))))


def proxy_subset(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a class-stratified random ``fraction`` of ``labels``.

    Each class keeps ``max(1, round(fraction * n_c))`` samples (half rounds up), drawn without
    replacement from ``rng`` (:func:`topodata._meta.stratified_subset`, the rule score
    extrapolation's scored subset shares).
    """
    return stratified_subset(labels, fraction, rng)


@deterministic  # the proxy's training and features follow torch's thread count
def embed(
    dataset: Any,
    *,
    model: str = "smallcnn",
    proxy_fraction: float = 1.0,
    epochs: int | None = None,
    batch_size: int = 256,
    lr: float | None = None,
    optimizer: str = "sgd",
    random_state: Any = 0,
    device: str = "auto",
    progress: bool = True,
    callbacks: Iterable[Any] = (),
    record_dynamics: bool = True,
    root: str | os.PathLike | None = None,
) -> EmbedResult:
    """Train a proxy model and extract penultimate features for every sample.

    Parameters
    ----------
    dataset : Dataset or str
        A loaded :class:`topodata.data.Dataset`, or a spec for :func:`topodata.data.load_dataset`.
    model : {'smallcnn', 'mlp', 'resnet18', 'lenet300100'}, default='smallcnn'
    proxy_fraction : float in (0, 1], default=1.0
        Train on a seeded class-stratified random fraction of the training split (cheaper proxy);
        features are still extracted for *all* training samples.
    epochs : int, optional
        Proxy epochs. Default :func:`default_epochs`: per model at least a few epochs and a few
        hundred steps, at most a cap (:data:`DEFAULT_LENGTH`). For ``smallcnn`` with batch 256:
        Fashion-MNIST 4 epochs (940 steps), its 10% proxy 17 epochs (408 steps), digits 60 (360).
    batch_size : int, default=256
    lr : float, optional
        Peak learning rate of the one-cycle schedule; default 0.05 (SGD) / 2e-3 (AdamW).
    optimizer : {'sgd', 'adamw'}, default='sgd'
        SGD with Nesterov momentum 0.9 and weight decay 5e-4, or AdamW.
    random_state : None, int or numpy Generator, default=0
        Seeds the proxy subset, the weight initialisation, batch order and augmentation (one
        independent stream each). With an int and ``device='cpu'`` the features are identical
        in a fresh process; CUDA kernels that break this are listed in :mod:`topodata.nn.loop`.
    device : {'auto', 'cpu', 'cuda'}, default='auto'
    progress : bool, default=True
        tqdm bars on stderr.
    callbacks : iterable, default=()
        Extra training callbacks (``on_batch`` / ``on_epoch_end``, see :func:`topodata.nn.fit`).
    record_dynamics : bool, default=True
        Record per-sample training dynamics (EL2N, forgetting, AUM inputs) during the proxy run
        (:mod:`topodata.nn.dynamics`). Only samples in the proxy subset are ever seen.
    root : str or path, optional
        Passed to :func:`topodata.data.load_dataset` when ``dataset`` is a spec.

    Returns
    -------
    EmbedResult

    Raises
    ------
    TopodataInputError
        Unknown model, fraction outside (0, 1], a model that does not fit the inputs, ...

    Examples
    --------
    >>> from topodata.embed import embed
    >>> res = embed("digits", model="mlp", epochs=2, progress=False)
    >>> res.features.shape, res.features.dtype
    ((1433, 128), dtype('float32'))
    """
    t_start = time.perf_counter()
    V.check_options(model, "model", tuple(MODELS))
    V.check_scalar(proxy_fraction, "proxy_fraction", (float, int), min_val=0, max_val=1, include_min=False)
    if epochs is not None:
        V.check_scalar(epochs, "epochs", (int, np.integer), min_val=1)
    V.check_scalar(batch_size, "batch_size", (int, np.integer), min_val=1)
    dev = resolve_device(device)
    seed = int(random_state) if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) else None
    rng = V.check_random_state(random_state)
    subset_seed, init_seed, fit_seed = (V.derive_seed(rng) for _ in range(3))

    if isinstance(dataset, str):
        dataset = load_dataset(dataset, root=root, progress=progress)
    elif not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a Dataset or a spec string; got {type(dataset).__name__}")
    t_loaded = time.perf_counter()

    ds = dataset
    subset = None
    n_proxy = ds.n_train
    if proxy_fraction < 1:
        subset = proxy_subset(ds.y_train, float(proxy_fraction), np.random.default_rng(subset_seed))
        n_proxy = int(subset.size)
    n_epochs = int(epochs) if epochs is not None else default_epochs(model, n_proxy, int(batch_size))

    net = build_model(model, ds.input_shape, ds.n_classes, random_state=init_seed)
    recorder = DynamicsRecorder(ds.n_train, ds.n_classes) if record_dynamics else None
    hist = fit(
        net, ds.x_train, ds.y_train, epochs=n_epochs, batch_size=int(batch_size), optimizer=optimizer, lr=lr,
        augment=ds.augment, device=dev, random_state=fit_seed, progress=progress,
        callbacks=[*callbacks, *([recorder] if recorder is not None else [])], indices=subset,
    )
    t_trained = time.perf_counter()

    # in process, or through Ray Data under the Ray engine (extract.py)
    features = extract(net, ds.x_train, device=dev, progress=progress)
    features_test = extract(net, ds.x_test, device=dev, progress=progress)
    t_extracted = time.perf_counter()
    acc, loss = _test_metrics(net, features_test, ds.y_test, dev)

    manifest = {
        "dataset": ds.name,
        "dataset_source": ds.source,
        "n_train": ds.n_train,
        "n_test": ds.n_test,
        "n_classes": ds.n_classes,
        "input_shape": list(ds.input_shape),
        "model": model,
        "feature_dim": int(features.shape[1]),
        "proxy_fraction": float(proxy_fraction),
        "n_proxy": n_proxy,
        "epochs": hist["epochs"],
        "steps": hist["steps"],
        "batch_size": int(batch_size),
        "optimizer": optimizer,
        "lr": hist["lr"],
        "schedule": hist["schedule"],
        "augment": hist["augment"],
        "seed": seed,
        "device": str(dev),
        "torch_threads": _torch_threads(),
        "deterministic": dev.type == "cpu",
        "proxy_train_loss": hist["loss"][-1],
        "proxy_test_accuracy": acc,
        "proxy_test_loss": loss,
        "dynamics_recorded": recorder is not None,
        "timings_s": {
            "load": round(t_loaded - t_start, 3),
            "train": round(t_trained - t_loaded, 3),
            "extract": round(t_extracted - t_trained, 3),
            "total": round(time.perf_counter() - t_start, 3),
        },
        "versions": versions(),
    }
    return EmbedResult(
        features=features, labels=ds.y_train.astype(np.int64), features_test=features_test,
        labels_test=ds.y_test.astype(np.int64), manifest=manifest, model=net,
        dynamics=recorder.result() if recorder is not None else None,
    )


def _torch_threads() -> int:
    return torch.get_num_threads()


def _test_metrics(net, features_test: np.ndarray, y_test: np.ndarray, dev) -> tuple[float | None, float | None]:
    """Test accuracy and loss from the extracted features through the head (no second forward pass)."""
    if len(y_test) == 0:
        return None, None
    with torch.no_grad():
        logits = net.head(torch.from_numpy(features_test).to(dev))
        y = torch.from_numpy(y_test).to(dev)
        return float((logits.argmax(1) == y).float().mean()), float(F.cross_entropy(logits, y))


def _spec_identity(spec: str, root) -> dict[str, Any]:
    """What identifies a dataset spec for the cache: files by absolute path, size and mtime."""
    kind, sep, arg = spec.partition(":")
    ident: dict[str, Any] = {"spec": spec}
    if sep and kind.lower() in ("npz", "imagefolder"):
        path = Path(arg).expanduser()
        ident["path"] = str(path.resolve())
        if path.exists():
            st = path.stat()
            ident["size_mtime"] = [st.st_size, st.st_mtime_ns]
    elif root is not None:
        ident["root"] = str(Path(root).expanduser().resolve())
    return ident


def cache_key(spec: str, *, model: str, proxy_fraction: float, epochs: int | None, random_state: int,
              batch_size: int, lr: float | None, optimizer: str, root=None) -> str:
    """Hex key of an embedding configuration (first 16 hex digits of a SHA-256)."""
    payload = {
        "version": CACHE_VERSION, "dataset": _spec_identity(spec, root), "model": model,
        "proxy_fraction": float(proxy_fraction), "epochs": epochs, "seed": int(random_state),
        "batch_size": int(batch_size), "lr": lr, "optimizer": optimizer,
        "threads": thread_count(),  # the features change with torch's thread count
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def embed_cached(
    spec: str,
    *,
    model: str = "smallcnn",
    proxy_fraction: float = 1.0,
    random_state: int = 0,
    cache_dir: str | os.PathLike | None = None,
    epochs: int | None = None,
    batch_size: int = 256,
    lr: float | None = None,
    optimizer: str = "sgd",
    record_dynamics: bool = True,
    progress: bool = True,
    **kw: Any,
) -> EmbedResult:
    """:func:`embed` once per configuration; later calls load the stored result.

    The entry lives in ``cache_dir/<key>/`` (default ``user_cache_dir()/embeddings``, i.e.
    ``$TOPODATA_CACHE/embeddings``) with ``features.npy``, ``labels.npy``, ``features_test.npy``,
    ``labels_test.npy``, ``manifest.json``, ``model.pt`` and ``dynamics.npz`` (where recorded).
    The key hashes the dataset spec (files by path, size and mtime; ``root``), model, proxy
    fraction, epochs, seed, batch size, learning rate and optimiser; the device is not part of it.
    A load is reported on stderr (with ``progress``) and through the ``topodata.embed`` logger.

    Parameters
    ----------
    spec : str
        Dataset spec (see :func:`topodata.data.load_dataset`).
    random_state : int, default=0
        Must be an int: a cache of an unseeded run would not be reproducible.
    cache_dir : str or path, optional
        Parent directory of the cache entries.
    **kw
        Further :func:`embed` options (``device``, ``root``, ``callbacks``); they are not part of
        the key.

    Returns
    -------
    EmbedResult
        With ``cache_path`` set to the entry.
    """
    if not isinstance(spec, str):
        raise TypeError(f"embed_cached needs a dataset spec string; got {type(spec).__name__} (use embed() for a Dataset)")
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise V.TopodataInputError(
            f"embed_cached needs an int random_state so the cached result is reproducible; got {random_state!r}"
        )
    V.check_random_state(random_state)
    V.check_options(model, "model", tuple(MODELS))
    key = cache_key(spec, model=model, proxy_fraction=proxy_fraction, epochs=epochs, random_state=random_state,
                    batch_size=batch_size, lr=lr, optimizer=optimizer, root=kw.get("root"))
    base = Path(cache_dir) if cache_dir is not None else user_cache_dir() / "embeddings"
    entry = base / key
    if (entry / MANIFEST_FILE).exists() and (not record_dynamics or (entry / "dynamics.npz").exists()):
        try:
            result = EmbedResult.load(entry)
        except (FileNotFoundError, V.TopodataInputError) as exc:
            logger.warning("cached embedding %s is unusable (%s); recomputing", entry, exc)
        else:
            result.from_cache = True
            msg = f"topodata: loaded cached embedding of {spec!r} ({model}) from {entry}"
            logger.info(msg)
            if progress:
                print(msg, file=sys.stderr)
            return result
    result = embed(spec, model=model, proxy_fraction=proxy_fraction, epochs=epochs, batch_size=batch_size, lr=lr,
                   optimizer=optimizer, random_state=random_state, record_dynamics=record_dynamics,
                   progress=progress, **kw)
    result.manifest["cache_key"] = key
    result.save(entry, include_model=True)
    result.cache_path = entry
    logger.info("stored embedding of %r (%s) in %s", spec, model, entry)
    return result
