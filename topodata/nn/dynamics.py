"""Per-sample training dynamics: what EL2N, forgetting, AUM, CCS and D2 are computed from.

A :class:`DynamicsRecorder` is a training callback (the protocol of :func:`topodata.nn.fit`):
for every minibatch it takes the logits the model produced *during* the training step and the
dataset indices of the batch, and scatters three per-sample statistics into one row per epoch:

- ``correct``: ``argmax(logits) == target`` (ties resolve to the first class, as ``argmax`` does);
- ``margin``: assigned logit minus the largest other logit (Pleiss et al. 2020, the quantity
  whose mean over epochs is the AUM);
- ``el2n``: ``‖softmax(logits) − onehot(target)‖₂`` (Paul et al. 2021).

Recording from the training forward pass (rather than re-evaluating the whole set after each
epoch) is what Toneva et al. (2019) and Pleiss et al. (2020) do: it costs nothing extra and sees
the sample exactly when the optimiser did. A sample met in several batches of one epoch keeps
the record of the last one.

When no proxy training was recorded, :func:`dynamics_from_features` trains a linear softmax head
on the features themselves and records it the same way: a cheap, documented stand-in that ranks
samples by how hard they are *for a linear read-out of those features*.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import _validation as V
from .._io import atomic_write_files

# torch and the training loop are imported on use: scores read TrainingDynamics without torch.

__all__ = ["TrainingDynamics", "DynamicsRecorder", "batch_statistics", "dynamics_from_features"]

_FIELDS = ("correct", "margin", "el2n")


@dataclass
class TrainingDynamics:
    """Per-epoch, per-sample records of one training run.

    Attributes
    ----------
    correct : ndarray of shape (n_epochs, n_samples), bool
        Whether the sample was classified correctly when seen in that epoch (False if unseen).
    margin : ndarray of shape (n_epochs, n_samples), float32
        Assigned logit minus the largest other logit; NaN where the sample was not seen.
    el2n : ndarray of shape (n_epochs, n_samples), float32
        ``‖softmax − onehot‖₂``; NaN where the sample was not seen.
    epochs : ndarray of shape (n_epochs,), int64
        The trainer's epoch number of each row, increasing.

    Examples
    --------
    >>> import numpy as np
    >>> d = TrainingDynamics(correct=np.ones((2, 3), bool), margin=np.ones((2, 3)), el2n=np.zeros((2, 3)))
    >>> d.n_epochs, d.n_samples, bool(d.seen.all())
    (2, 3, True)
    """

    correct: np.ndarray
    margin: np.ndarray
    el2n: np.ndarray
    epochs: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.correct = np.asarray(self.correct, dtype=bool)
        self.margin = np.asarray(self.margin, dtype=np.float32)
        self.el2n = np.asarray(self.el2n, dtype=np.float32)
        shapes = {name: getattr(self, name).shape for name in _FIELDS}
        if len(set(shapes.values())) != 1 or self.correct.ndim != 2:
            raise V.TopodataInputError(
                f"TrainingDynamics arrays must share one 2-D shape (n_epochs, n_samples); got {shapes}"
            )
        if self.epochs is None:
            self.epochs = np.arange(self.correct.shape[0], dtype=np.int64)
        self.epochs = np.asarray(self.epochs, dtype=np.int64)
        if self.epochs.shape != (self.correct.shape[0],):
            raise V.TopodataInputError(
                f"TrainingDynamics.epochs must have shape ({self.correct.shape[0]},); "
                f"got {self.epochs.shape}"
            )

    @property
    def n_epochs(self) -> int:
        return int(self.correct.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.correct.shape[1])

    @property
    def seen(self) -> np.ndarray:
        """Bool mask of shape (n_epochs, n_samples): was the sample recorded in that epoch."""
        return ~np.isnan(self.margin)

    def save(self, path: str | Path) -> Path:
        """Write the four arrays to one ``.npz`` file, atomically (temporary name, then rename)."""
        path = Path(path)
        buf = io.BytesIO()
        np.savez(buf, correct=self.correct, margin=self.margin, el2n=self.el2n, epochs=self.epochs)
        return atomic_write_files(path.parent, {path.name: buf.getvalue()})[0]

    @classmethod
    def load(cls, path: str | Path) -> "TrainingDynamics":
        """Read a file written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        TopodataInputError
            If the file lacks one of the arrays or their shapes disagree.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training dynamics file {path} does not exist")
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _FIELDS if k not in data.files]
            if missing:
                raise V.TopodataInputError(
                    f"{path} is not a TrainingDynamics file: arrays {missing} are missing "
                    "(write it with TrainingDynamics.save or DynamicsRecorder.save)"
                )
            return cls(**{k: data[k] for k in data.files if k in (*_FIELDS, "epochs")})


def batch_statistics(logits: Any, targets: Any) -> tuple[Any, Any, Any]:
    """Correctness, margin and EL2N of each row of a minibatch, computed where the logits live.

    Parameters
    ----------
    logits : torch.Tensor or array-like of shape (batch, n_classes)
    targets : torch.Tensor or array-like of shape (batch,)
        Assigned (possibly noisy) class ids.

    Returns
    -------
    correct, margin, el2n : torch.Tensor of shape (batch,)
        bool, float32, float32, on the logits' device.
    """
    import torch

    with torch.no_grad():
        z = torch.as_tensor(logits).detach().float()
        t = torch.as_tensor(targets, device=z.device).long().view(-1, 1)
        assigned = z.gather(1, t).squeeze(1)
        others = z.scatter(1, t, float("-inf")).amax(dim=1)
        # float64 softmax: 1 − p_t for confident samples would lose its digits in float32
        p = torch.softmax(z.double(), dim=1)
        err = p.scatter_add(1, t, -torch.ones_like(p[:, :1]))  # p − onehot(t), in place of a one-hot
        el2n = torch.linalg.vector_norm(err, dim=1).float()
        correct = z.argmax(dim=1) == t.squeeze(1)
    return correct, assigned - others, el2n


class DynamicsRecorder:
    """Training callback that records per-sample dynamics from each minibatch's logits.

    Parameters
    ----------
    n_samples : int
        Size of the training set the batch ``indices`` point into.
    n_classes : int
        Number of logits per sample (checked on every batch).

    Notes
    -----
    Work per batch is three vectorised torch reductions on the logits' device and one scatter
    of three length-``batch`` vectors into the epoch's row (no loop over samples). Memory is
    ``9 * n_samples`` bytes per epoch (bool + two float32).

    Examples
    --------
    >>> import numpy as np
    >>> rec = DynamicsRecorder(4, 2)
    >>> rec.on_batch(epoch=0, step=0, indices=np.array([2, 0]),
    ...              logits=np.array([[2.0, 0.0], [0.0, 1.0]]), targets=np.array([0, 0]))
    >>> d = rec.result()
    >>> d.correct.tolist(), d.margin.tolist()
    ([[False, False, True, False]], [[-1.0, nan, 2.0, nan]])
    """

    def __init__(self, n_samples: int, n_classes: int) -> None:
        self.n_samples = V.check_scalar(n_samples, "n_samples", (int, np.integer), min_val=1)
        self.n_classes = V.check_scalar(n_classes, "n_classes", (int, np.integer), min_val=2)
        self._rows: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _row(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if epoch not in self._rows:
            n = int(self.n_samples)
            self._rows[epoch] = (
                np.zeros(n, dtype=bool),
                np.full(n, np.nan, dtype=np.float32),
                np.full(n, np.nan, dtype=np.float32),
            )
        return self._rows[epoch]

    def on_batch(self, *, epoch: int, step: int, indices: Any, logits: Any, targets: Any) -> None:
        """Record one minibatch: ``logits[b]`` belongs to training sample ``indices[b]``."""
        import torch

        idx = torch.as_tensor(indices).detach().cpu().numpy().astype(np.int64, copy=False).ravel()
        shape = tuple(logits.shape)
        if len(shape) != 2 or shape[1] != self.n_classes or shape[0] != idx.size:
            raise V.TopodataInputError(
                f"logits must have shape ({idx.size}, {self.n_classes}) = (len(indices), n_classes); "
                f"got {shape}"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_samples):
            raise V.TopodataInputError(
                f"batch indices range [{idx.min()}, {idx.max()}] does not fit n_samples={self.n_samples}; "
                "pass dataset positions, not positions within the batch"
            )
        correct, margin, el2n = batch_statistics(logits, targets)
        # one device-to-host copy per batch instead of three
        stats = torch.stack([correct.float(), margin, el2n]).cpu().numpy()
        row_c, row_m, row_e = self._row(int(epoch))
        # a later batch of the same epoch overwrites an earlier record of the sample, as documented
        # (within one batch, numpy leaves the winner of a repeated index unspecified)
        row_c[idx] = stats[0] > 0.5
        row_m[idx] = stats[1]
        row_e[idx] = stats[2]

    def on_epoch_end(self, *, epoch: int, model: Any = None) -> None:
        """Make sure an epoch without batches still gets its (all-unseen) row."""
        self._row(int(epoch))

    def result(self) -> TrainingDynamics:
        """The records so far as a :class:`TrainingDynamics`, rows in increasing epoch order.

        Raises
        ------
        RuntimeError
            If nothing was recorded yet.
        """
        if not self._rows:
            raise RuntimeError("DynamicsRecorder has no records; attach it to training first")
        epochs = sorted(self._rows)
        stacked = [np.stack([self._rows[e][k] for e in epochs]) for k in range(3)]
        return TrainingDynamics(*stacked, epochs=np.array(epochs, dtype=np.int64))

    def save(self, path: str | Path) -> Path:
        """Shortcut for ``self.result().save(path)``."""
        return self.result().save(path)


def dynamics_from_features(
    features: Any,
    labels: Any,
    *,
    epochs: int = 20,
    random_state: Any = 0,
    batch_size: int | None = None,
    lr: float = 0.1,
) -> TrainingDynamics:
    """Fallback dynamics: train a linear softmax head on the features and record it.

    Used by ``el2n``/``forgetting``/``aum``/``ccs``/``d2`` when no proxy training was recorded.
    The features are standardised per dimension, the head starts at zero (the problem is convex,
    so no random initialisation is needed) and is trained with minibatch SGD in a seeded random
    order; minibatch noise is what makes samples flip between correct and wrong, so forgetting
    events exist. Training is :func:`topodata.nn.fit` (SGD, Nesterov momentum 0.9, constant
    learning rate so that late epochs stay as informative as early ones, weight decay 5e-4, no
    augmentation, GPU when present). The resulting scores measure difficulty *for a linear
    read-out of these features*, a weaker signal than a deep proxy's dynamics.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    epochs : int, default=20
        Passes over the data, one record row each.
    random_state : None, int or numpy Generator, default=0
        Seeds the minibatch order (through ``fit``'s ``torch.Generator``; no global seeding).
    batch_size : int, optional
        Default ``min(512, max(32, n_samples // 100))``: about 100 noisy steps per epoch on
        large sets (the cost is per step, not per sample, for a linear head), and still several
        per epoch on small ones.
    lr : float, default=0.1
        Constant learning rate.

    Returns
    -------
    TrainingDynamics
        With ``n_epochs == epochs`` and every sample seen in every epoch.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(60, 3)); y = (x[:, 0] > 0).astype(int)
    >>> d = dynamics_from_features(x, y, epochs=3)
    >>> d.correct.shape, bool(d.correct[-1].mean() > 0.8)
    ((3, 60), True)
    """
    import torch

    from .loop import fit

    x, y = V.check_features_labels(features, labels)
    V.check_scalar(epochs, "epochs", (int, np.integer), min_val=1)
    rng = V.check_random_state(random_state)
    n_classes = max(int(y.max()) + 1, 2)
    if batch_size is None:
        batch_size = min(512, max(32, x.shape[0] // 100))

    std = x.std(axis=0)
    xs = V.as_float32((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0))
    head = torch.nn.Linear(xs.shape[1], n_classes)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    rec = DynamicsRecorder(x.shape[0], n_classes)
    fit(
        head, xs, y, epochs=int(epochs), batch_size=batch_size, lr=lr, schedule="constant", augment="none",
        random_state=V.derive_seed(rng), progress=False, callbacks=[rec],
    )
    return rec.result()
