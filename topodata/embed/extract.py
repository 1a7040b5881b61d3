"""Feature extraction on the current engine: in this process, or through Ray Data on a Ray cluster.

:func:`extract` is what :func:`topodata.embed.embed` calls for every split. In-process it is
:func:`topodata.nn.extract_features`. Under the Ray engine (``select --engine ray``, or inside
:func:`topodata._engine.use_engine`) the rows go through a Ray Data pipeline: ``map_batches`` with
an actor that holds the model (one GPU per actor when the model runs on CUDA, else as many CPUs as
its threads), batches in the input order. Each actor runs :func:`topodata.nn.extract_features` on
batches of the same size and with the driver's thread count, so CPU features equal the in-process
ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._engine import current_engine
from .._threads import canonical_threads, thread_count
from ..nn.loop import extract_features, resolve_device

__all__ = ["extract", "EXTRACT_BATCH"]

#: Rows per forward pass (and per Ray Data batch).
EXTRACT_BATCH = 1024


def extract(model: torch.nn.Module, x: Any, *, device: Any = "auto", progress: bool = True,
            batch_size: int = EXTRACT_BATCH) -> np.ndarray:
    """Penultimate features of the rows of ``x``, shape (n_samples, feature_dim), float32, in row order."""
    if current_engine().name != "ray" or len(x) == 0:
        return extract_features(model, x, batch_size=batch_size, device=device, progress=progress)
    return _ray_data_features(model, np.asarray(x), device=resolve_device(device), batch_size=batch_size)


class _Featurizer:
    """A Ray Data actor: the model, loaded once, applied to each batch of rows."""

    def __init__(self, model: torch.nn.Module, device: str, n_threads: int) -> None:
        self.model = model.to(device)
        self.device = device
        self.n_threads = n_threads

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with canonical_threads(self.n_threads):
            feats = extract_features(self.model, batch["data"], batch_size=len(batch["data"]),
                                     device=self.device, progress=False)
        return {"features": feats}


def _ray_data_features(model: torch.nn.Module, x: np.ndarray, *, device: torch.device, batch_size: int) -> np.ndarray:
    import copy

    import ray

    cuda = device.type == "cuda"
    n_threads = thread_count()
    # one GPU per actor; on CPUs each actor reserves as many CPUs as its threads (no oversubscription)
    res = ray.cluster_resources()
    n_actors = max(1, int(res.get("GPU", 1)) if cuda else int(res.get("CPU", 1)) // n_threads)
    n_batches = -(-x.shape[0] // batch_size)
    n_actors = min(n_actors, n_batches)
    # blocks of whole batches (the rows of each forward pass are those of the in-process loop), at
    # least two per actor so that every actor has work
    per_block = batch_size * max(1, n_batches // (2 * n_actors))
    blocks = [x[s : s + per_block] for s in range(0, x.shape[0], per_block)]
    ctx = ray.data.DataContext.get_current()
    ordered = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True  # batches come back in the order of the rows
    try:
        out = ray.data.from_numpy(blocks).map_batches(
            # a CPU copy travels to the actors; the caller's model stays where it is
            _Featurizer, fn_constructor_args=(copy.deepcopy(model).cpu(), "cuda" if cuda else "cpu", n_threads),
            batch_size=batch_size, batch_format="numpy", concurrency=n_actors, num_gpus=1 if cuda else 0,
            num_cpus=1 if cuda else n_threads,
        )
        parts = [b["features"] for b in out.iter_batches(batch_size=None, batch_format="numpy")]
    finally:
        ctx.execution_options.preserve_order = ordered
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
