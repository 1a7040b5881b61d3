"""The training loop shared by proxy training (``topodata embed``), subset training and IMP.

The whole training set lives on the device as one tensor; each epoch draws a permutation from an
explicit CPU ``torch.Generator`` (the *order* seed) and augments batches on the device from a
second generator (the *augmentation* seed), as airbench does. Nothing touches the global RNG.

Reproducibility: on CPU the same seed gives bit-identical weights in a fresh process (with the
same number of threads). On CUDA some kernels are non-deterministic: cuDNN convolution backward
(weight and input gradients, algorithm picked at run time), ``AdaptiveAvgPool2d`` and
``MaxPool2d`` backward, and the atomic adds behind ``index_add_``/``scatter_add_``; expect results
that agree to float rounding, not bit for bit.

Callback protocol (``callbacks=``): any object with any of

``on_batch(*, epoch, step, indices, logits, targets)``
    after each optimiser step; ``indices`` (LongTensor) are positions in ``x`` (not in the subset),
    ``logits`` are detached, computed on the augmented batch in train mode, ``targets`` the labels;
    all three on the training device.
``on_epoch_end(*, epoch, model)``
    after each pass over the training positions (the last, partial one under ``steps=`` too).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import _validation as V
from .augment import augment_batch, resolve_augment

__all__ = ["fit", "evaluate", "extract_features", "resolve_device", "one_cycle", "OPTIMIZERS", "SCHEDULES"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine", "constant")
DEFAULT_LR = {"sgd": 0.05, "adamw": 2e-3}
DEFAULT_EPOCHS = 10


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``'auto'`` → ``cuda`` when available, else ``cpu``; otherwise the named device, checked.

    Raises
    ------
    TopodataInputError
        ``cuda`` requested but not available, or a name torch does not know.
    """
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise V.TopodataInputError(f"device must be 'auto', 'cpu' or 'cuda[:i]'; got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise V.TopodataInputError(
            f"device {str(device)!r} was requested but CUDA is not available; use device='auto' or 'cpu'"
        )
    if dev.type not in ("cpu", "cuda"):
        raise V.TopodataInputError(f"device must be 'auto', 'cpu' or 'cuda[:i]'; got {device!r}")
    return dev


def _as_tensor_x(x: Any, name: str = "x") -> torch.Tensor:
    """Inputs as a float32 tensor (shares memory with a float32 numpy array), checked finite."""
    if isinstance(x, torch.Tensor):
        t = x.detach().float()
    else:
        t = torch.from_numpy(V.as_float32(x))
    if t.ndim < 2:
        raise V.TopodataInputError(f"{name} must have shape (n_samples, ...); got shape {tuple(t.shape)}")
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise V.TopodataInputError(f"{name} contains NaN or inf; clean the inputs first")
    return t


def _as_tensor_y(y: Any, n: int) -> torch.Tensor:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    return torch.from_numpy(V.check_labels(y, n_samples=n, name="y"))


def _check_indices(indices: Any, n: int) -> torch.Tensor:
    idx = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise V.TopodataInputError(f"indices as a mask must have shape ({n},); got {idx.shape}")
        idx = np.flatnonzero(idx)
    if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise V.TopodataInputError(f"indices must be a 1-D array of integer positions; got {idx.dtype} {idx.shape}")
    if idx.size < 2:
        raise V.TopodataInputError(f"indices must select at least 2 samples to train on; got {idx.size}")
    if idx.min() < 0 or idx.max() >= n:
        raise V.TopodataInputError(f"indices must lie in [0, {n}); got range [{idx.min()}, {idx.max()}]")
    if np.unique(idx).size != idx.size:
        raise V.TopodataInputError("indices contain duplicates; pass each training position once")
    return torch.from_numpy(idx.astype(np.int64))


def one_cycle(total: int, *, warmup: float = 0.25, div: float = 25.0, final_div: float = 1e4):
    """Learning-rate multiplier of the one-cycle schedule at optimiser step ``s`` (0-based).

    Linear warm-up from 1/``div`` to 1 over the first ``warmup`` fraction of ``total`` steps (at
    least one), then cosine annealing to 1/(``div`` * ``final_div``) at the last step: the shape of
    ``torch.optim.lr_scheduler.OneCycleLR`` (momentum not cycled). Written out because
    ``OneCycleLR`` divides by zero when the warm-up is shorter than two steps (tiny subsets under a
    small step budget).
    """
    warm = max(1, round(warmup * total))
    low = 1.0 / (div * final_div)

    def multiplier(s: int) -> float:
        if s < warm:
            return 1.0 / div + (1.0 - 1.0 / div) * s / warm
        t = min(1.0, (s - warm) / max(1, total - 1 - warm))
        return low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * t))

    return multiplier


def _hooks(callbacks: Iterable[Any], name: str) -> list:
    return [getattr(cb, name) for cb in callbacks if callable(getattr(cb, name, None))]


def fit(
    model: nn.Module,
    x: Any,
    y: Any,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 128,
    optimizer: str = "sgd",
    lr: float | None = None,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 5e-4,
    schedule: str = "onecycle",
    augment: str = "auto",
    device: str | torch.device = "auto",
    random_state: Any = 0,
    progress: bool = True,
    callbacks: Iterable[Any] = (),
    indices: Any = None,
) -> dict[str, Any]:
    """Train ``model`` in place with cross-entropy and return its history.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of ``x`` to logits (N, n_classes). Moved to ``device``; left in eval mode.
    x : ndarray or Tensor of shape (n_samples, ...)
        Inputs, e.g. ``Dataset.x_train`` (float32 images (N, C, H, W) in [0, 1]).
    y : array-like of shape (n_samples,)
        Integer class ids.
    epochs : int, optional
        Passes over the training positions. Give ``epochs`` or ``steps``, not both; neither means
        10 epochs.
    steps : int, optional
        Optimiser steps in all (a fixed budget): training runs ``ceil(steps / batches_per_epoch)``
        epochs and stops after exactly ``steps`` batches, so a subset gets as many updates as the
        full set would (the fair comparison for pruned training sets).
    batch_size : int, default=128
        Each epoch is split into ``ceil(n / batch_size)`` batches of near-equal size (no sample is
        dropped, no batch is much smaller than the others).
    optimizer : {'sgd', 'adamw'}, default='sgd'
        SGD with (Nesterov) momentum, or AdamW.
    lr : float, optional
        Peak learning rate; default 0.05 for SGD, 2e-3 for AdamW.
    momentum : float, default=0.9
        SGD momentum (ignored by AdamW).
    nesterov : bool, default=True
        Nesterov momentum for SGD.
    weight_decay : float, default=5e-4
        L2 penalty (SGD) or decoupled decay (AdamW) on every parameter.
    schedule : {'onecycle', 'cosine', 'constant'}, default='onecycle'
        Learning-rate schedule per step. ``onecycle``: warm up linearly over the first 25% of
        steps from lr/25 to lr, then cosine down to lr/2.5e5 at the last step (:func:`one_cycle`,
        momentum not cycled).
    augment : {'auto', 'none', 'crop', 'crop-flip'}, default='auto'
        On-device batched augmentation: random crop with zero padding (1/8 of the side: 4 px for
        32x32, 3 for 28x28, 1 for 8x8) and optionally a horizontal flip with probability 1/2. ``auto`` crops images
        and leaves feature vectors alone; pass ``dataset.augment`` to add flips where meaningful.
    device : {'auto', 'cpu', 'cuda'} or torch.device, default='auto'
    random_state : None, int or numpy Generator, default=0
        Source of the batch-order and augmentation seeds (two torch Generators).
    progress : bool, default=True
        A tqdm bar over steps on stderr.
    callbacks : iterable, default=()
        Objects with ``on_batch`` / ``on_epoch_end`` (see the module docstring).
    indices : array-like of int or bool mask, optional
        Train only on these positions of ``x`` (a kept subset). Callbacks still receive positions
        in ``x``.

    Returns
    -------
    dict
        ``loss`` and ``train_accuracy`` (lists, one per epoch, on augmented batches), ``epochs``,
        ``steps``, ``seconds``, ``n_train``, ``batch_size``, ``lr``, ``optimizer``, ``schedule``,
        ``augment`` (resolved), ``device``.

    Raises
    ------
    TopodataInputError
        Bad shapes, NaN inputs, labels of another length or beyond the model's logits, both
        ``epochs`` and ``steps``, out-of-range options.

    Examples
    --------
    >>> import numpy as np
    >>> from topodata.nn import build_model
    >>> from topodata.nn import fit
    >>> x = np.random.default_rng(0).random((64, 1, 8, 8), dtype=np.float32)
    >>> y = np.arange(64) % 2
    >>> hist = fit(build_model("mlp", (1, 8, 8), 2), x, y, epochs=2, batch_size=32, progress=False)
    >>> hist["steps"]
    4
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if epochs is not None and steps is not None:
        raise V.TopodataInputError(
            f"give epochs or steps, not both; got epochs={epochs}, steps={steps}"
        )
    if steps is not None:
        V.check_scalar(steps, "steps", (int, np.integer), min_val=1)
    else:
        epochs = DEFAULT_EPOCHS if epochs is None else V.check_scalar(epochs, "epochs", (int, np.integer), min_val=1)
    V.check_scalar(batch_size, "batch_size", (int, np.integer), min_val=1)
    V.check_options(optimizer, "optimizer", OPTIMIZERS)
    V.check_options(schedule, "schedule", SCHEDULES)
    lr = DEFAULT_LR[optimizer] if lr is None else V.check_scalar(lr, "lr", (float, int), min_val=0, include_min=False)
    V.check_scalar(momentum, "momentum", (float, int), min_val=0, max_val=1, include_max=False)
    V.check_scalar(weight_decay, "weight_decay", (float, int), min_val=0)
    dev = resolve_device(device)
    rng = V.check_random_state(random_state)
    order_seed, aug_seed = V.derive_seed(rng), V.derive_seed(rng)

    xt = _as_tensor_x(x)
    n = xt.shape[0]
    yt = _as_tensor_y(y, n)
    pos = torch.arange(n) if indices is None else _check_indices(indices, n)
    if indices is None and n < 2:
        raise V.TopodataInputError(f"x has {n} sample(s); at least 2 are needed to train")
    mode = resolve_augment(augment, tuple(xt.shape))

    xt, yt = xt.to(dev), yt.to(dev)
    model.to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                              weight_decay=weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    n_sub = int(pos.numel())
    per_epoch = math.ceil(n_sub / batch_size)
    total = int(steps) if steps is not None else int(epochs) * per_epoch
    n_epochs = math.ceil(total / per_epoch)
    if schedule == "onecycle":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, one_cycle(total))
    elif schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    else:
        sched = None

    order_gen = torch.Generator().manual_seed(order_seed)
    aug_gen = torch.Generator(device=dev).manual_seed(aug_seed)
    on_batch, on_epoch_end = _hooks(callbacks, "on_batch"), _hooks(callbacks, "on_epoch_end")
    history: dict[str, Any] = {"loss": [], "train_accuracy": []}

    from tqdm.auto import tqdm  # on use: only progress bars need it

    bar = tqdm(total=total, desc="train", unit="step", disable=not progress, leave=False, file=sys.stderr)
    t0 = time.perf_counter()
    step = 0
    model.train()
    checked_labels = False
    try:
        for epoch in range(n_epochs):
            perm = pos[torch.randperm(n_sub, generator=order_gen)].to(dev)
            loss_sum = torch.zeros((), device=dev)
            correct = torch.zeros((), device=dev, dtype=torch.long)
            seen = 0
            for batch in torch.tensor_split(perm, per_epoch):
                if step >= total:
                    break
                xb = augment_batch(xt[batch], mode, aug_gen)
                yb = yt[batch]
                logits = model(xb)
                if not checked_labels:
                    if int(yt.max()) >= logits.shape[1]:
                        raise V.TopodataInputError(
                            f"y has class id {int(yt.max())} but the model has {logits.shape[1]} "
                            "outputs; build it with n_classes = max(y) + 1"
                        )
                    checked_labels = True
                loss = F.cross_entropy(logits, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                logits = logits.detach()
                for hook in on_batch:
                    hook(epoch=epoch, step=step, indices=batch, logits=logits, targets=yb)
                loss_sum += loss.detach() * batch.numel()
                correct += (logits.argmax(1) == yb).sum()
                seen += batch.numel()
                step += 1
                bar.update(1)
            history["loss"].append(float(loss_sum) / max(seen, 1))
            history["train_accuracy"].append(float(correct) / max(seen, 1))
            bar.set_postfix(epoch=epoch + 1, loss=f"{history['loss'][-1]:.3f}")
            for hook in on_epoch_end:
                hook(epoch=epoch, model=model)
            model.train()
    finally:
        bar.close()
        model.eval()
    history.update(
        epochs=n_epochs, steps=step, seconds=time.perf_counter() - t0, n_train=n_sub,
        batch_size=int(batch_size), lr=float(lr), optimizer=optimizer, schedule=schedule,
        augment=mode, device=str(dev),
    )
    return history


def _batches(model: nn.Module, x: Any, batch_size: int, device, desc: str, progress: bool):
    """Yield ``(start, batch on device)`` in eval mode without gradients; restores the mode after."""
    from tqdm.auto import tqdm  # on use: only progress bars need it

    V.check_scalar(batch_size, "batch_size", (int, np.integer), min_val=1)
    dev = resolve_device(device)
    xt = _as_tensor_x(x)
    was_training = model.training
    model.to(dev).eval()
    try:
        with torch.no_grad():
            starts = range(0, xt.shape[0], batch_size)
            for s in tqdm(starts, desc=desc, disable=not progress, leave=False, file=sys.stderr):
                yield s, xt[s : s + batch_size].to(dev, non_blocking=True)
    finally:
        model.train(was_training)


def evaluate(model: nn.Module, x: Any, y: Any, *, batch_size: int = 1024,
             device: str | torch.device = "auto") -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``(x, y)`` in eval mode.

    Returns
    -------
    dict
        ``accuracy`` (fraction in [0, 1]) and ``loss``; both NaN for an empty split.
    """
    xt = _as_tensor_x(x)
    yt = _as_tensor_y(y, xt.shape[0])
    if xt.shape[0] == 0:
        return {"accuracy": float("nan"), "loss": float("nan")}
    loss, correct = 0.0, 0
    for s, xb in _batches(model, xt, batch_size, device, "evaluate", False):
        logits = model(xb)
        yb = yt[s : s + xb.shape[0]].to(logits.device)
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    return {"accuracy": correct / xt.shape[0], "loss": loss / xt.shape[0]}


def extract_features(model: nn.Module, x: Any, *, batch_size: int = 1024,
                     device: str | torch.device = "auto", progress: bool = True) -> np.ndarray:
    """Penultimate activations ``model.features(x)`` in eval mode.

    Returns
    -------
    ndarray of shape (n_samples, feature_dim), float32

    Raises
    ------
    TypeError
        ``model`` has no ``features`` method (build it with :func:`topodata.nn.build_model`).
    """
    if not callable(getattr(model, "features", None)):
        raise TypeError(
            f"model {type(model).__name__} has no features(x) method; build it with topodata.nn.build_model"
        )
    xt = _as_tensor_x(x)
    out = [model.features(xb).float().cpu() for _, xb in _batches(model, xt, batch_size, device, "features", progress)]
    if not out:
        dim = getattr(model, "feature_dim", 0)
        return np.empty((0, dim), dtype=np.float32)
    return np.ascontiguousarray(torch.cat(out).numpy(), dtype=np.float32)
