"""Checkpoints of (possibly pruned) models for ``topodata np`` and ``topodata timp``.

A topodata checkpoint is a ``torch.save`` of a dict with ``format``, ``model`` (a
``topodata.nn.build_model`` name), ``input_shape``, ``n_classes`` and ``state_dict``. A plain
state dict works too when the model name and shapes are given. State dicts of models pruned with
``torch.nn.utils.prune`` (``weight_orig`` + ``weight_mask``) load into a model with the same masks.
Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only, no code.
"""

from __future__ import annotations

import io
import os
from typing import Any, Sequence

from .. import _validation as V

# torch and the model zoo are imported on use, as everywhere in topodata.weights (start-up time).

__all__ = ["CHECKPOINT_FORMAT", "checkpoint_bytes", "load_checkpoint"]

CHECKPOINT_FORMAT = "topodata-checkpoint/1"


def checkpoint_bytes(model: Any, *, model_name: str, input_shape: Sequence[int], n_classes: int) -> bytes:
    """Serialise ``model`` (pruning masks included) with what is needed to rebuild it."""
    import torch

    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "model": model_name,
                "input_shape": [int(s) for s in input_shape], "n_classes": int(n_classes),
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, buf)
    return buf.getvalue()


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model: str | None = None,
    input_shape: Sequence[int] | None = None,
    n_classes: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Rebuild a model from a checkpoint file.

    Parameters
    ----------
    path : path-like
        A topodata checkpoint or a plain ``state_dict``.
    model, input_shape, n_classes : optional
        Override (or, for a plain state dict, supply) the model name and shapes.

    Returns
    -------
    model : torch.nn.Module
        In eval mode on the CPU, with ``torch.nn.utils.prune`` masks where the state dict has them.
    meta : dict
        ``model``, ``input_shape``, ``n_classes`` actually used.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    TopodataInputError
        If the file is no checkpoint, the model or shapes are missing, or the weights do not fit.
    """
    import torch
    from torch.nn.utils import prune

    from ..nn.models import build_model

    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {os.fspath(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a non-checkpoint file
        raise V.TopodataInputError(f"cannot read checkpoint {os.fspath(path)!r}: {type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if isinstance(obj, dict) and "state_dict" in obj:
        state, meta = obj["state_dict"], {k: obj.get(k) for k in ("model", "input_shape", "n_classes")}
    elif isinstance(obj, dict) and all(torch.is_tensor(v) for v in obj.values()):
        state, meta = obj, {"model": None, "input_shape": None, "n_classes": None}
    else:
        raise V.TopodataInputError(
            f"checkpoint {os.fspath(path)!r} holds a {type(obj).__name__}, not a state dict; save "
            "model.state_dict() or use the model.pt written by `topodata timp`"
        )
    for key, value in (("model", model), ("input_shape", input_shape), ("n_classes", n_classes)):
        if value is not None:
            meta[key] = value
    missing = [k for k, v in meta.items() if v is None]
    if missing:
        flags = {"model": "--model", "input_shape": "--input-shape or --dataset", "n_classes": "--classes or --dataset"}
        raise V.TopodataInputError(
            f"checkpoint {os.fspath(path)!r} does not say its {', '.join(missing)}; pass "
            + ", ".join(flags[k] for k in missing)
        )
    meta["input_shape"] = tuple(int(s) for s in meta["input_shape"])
    meta["n_classes"] = int(meta["n_classes"])
    net = build_model(meta["model"], meta["input_shape"], meta["n_classes"])
    modules = dict(net.named_modules())
    for key in state:
        if key.endswith(".weight_mask") or key == "weight_mask":
            name = key[: -len(".weight_mask")] if "." in key else ""
            if name in modules and not hasattr(modules[name], "weight_mask"):
                prune.identity(modules[name], "weight")
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise V.TopodataInputError(
            f"checkpoint {os.fspath(path)!r} does not fit model {meta['model']!r} with input shape "
            f"{meta['input_shape']} and {meta['n_classes']} classes: {' '.join(str(exc).split())[:300]}"
        ) from None
    return net.eval(), meta
