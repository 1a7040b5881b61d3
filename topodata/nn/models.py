"""The model zoo: networks used to embed data, to train on kept subsets and to study weight pruning.

Every model is a :class:`FeatureModel`: ``features(x)`` gives the penultimate activations
``(N, feature_dim)`` that :func:`topodata.embed.embed` extracts, and ``forward(x) = head(features(x))``
gives the logits. Weights are initialised from an explicit ``torch.Generator`` (docs/design.md#randomness), so
``build_model(..., random_state=s)`` is the same network in every process.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import TopodataInputError, check_options, check_random_state, check_scalar, derive_seed

__all__ = ["FeatureModel", "MLP", "SmallCNN", "ResNet18", "LeNet300100", "MODELS", "build_model",
           "init_weights"]


class FeatureModel(nn.Module):
    """Base class: a feature extractor ``body`` followed by a linear classifier ``head``."""

    feature_dim: int

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations of shape (N, feature_dim)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MLP(FeatureModel):
    """Flatten → ``hidden`` ReLU layers (with batch norm) → linear head; features = last hidden layer."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, hidden: tuple[int, ...] = (256, 128)):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = int(np.prod(input_shape))
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True)]
            width = h
        self.body = nn.Sequential(*layers)
        self.feature_dim = width
        self.head = nn.Linear(width, n_classes)


class LeNet300100(FeatureModel):
    """LeNet-300-100 (LeCun et al. 1998): input-300-100-classes, fully connected, ReLU, no batch norm.

    The classic subject of lottery-ticket and neural-persistence studies (784-300-100-10 on MNIST):
    three plain ``nn.Linear`` layers, ``fc1``, ``fc2`` and ``head``, so every weight is an edge of a
    bipartite layer graph. Features are the 100 activations of ``fc2``.
    """

    def __init__(self, input_shape: tuple[int, ...], n_classes: int):
        super().__init__()
        self.fc1 = nn.Linear(int(np.prod(input_shape)), 300)
        self.fc2 = nn.Linear(300, 100)
        self.head = nn.Linear(100, n_classes)
        self.feature_dim = 100

    def features(self, x):
        x = torch.relu(self.fc1(x.flatten(1)))
        return torch.relu(self.fc2(x))


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class SmallCNN(FeatureModel):
    """A small, CPU-friendly CNN: three 3x3 conv-BN-ReLU stages (``widths``) with 2x2 max-pooling
    between them while the map is at least 4 pixels wide, adaptive average pooling to 4x4, then a
    fully connected layer (``feature_dim`` = 128, BN, ReLU) whose activations are the features.

    156 k parameters and 2.1 M multiply-adds per 28x28 image. The conv widths are small on purpose:
    on CPU the cost is dominated by memory traffic at full resolution, and (32, 64, 128) made a
    Fashion-MNIST epoch 4-5x slower. The 4x4 pooling plus the dense layer keep *where* things are
    (global average pooling reached 75% Fashion-MNIST test accuracy after one epoch, this head 86%),
    and works for 8x8 digits as for 32x32 CIFAR images.
    """

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, widths: tuple[int, ...] = (16, 32, 64),
                 feature_dim: int = 128):
        super().__init__()
        c, h, w = input_shape
        layers: list[nn.Module] = []
        side = min(h, w)
        for i, width in enumerate(widths):
            layers += _conv_bn(c, width)
            c = width
            if i < len(widths) - 1 and side >= 4:
                layers.append(nn.MaxPool2d(2))
                side //= 2
        layers += [nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(c * 16, feature_dim, bias=False),
                   nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, n_classes)


class ResNet18(FeatureModel):
    """ResNet-18 (He et al. 2016), CIFAR-style: 3x3 stride-1 stem, no max-pool, widths 64-128-256-512.

    Built from torchvision's ``resnet18`` (the blocks are the library's) with the stem swapped for
    ``input_shape[0]`` channels, so 1-channel 28x28 and 3-channel 32x32 inputs both work; inputs as
    small as 8x8 work too (stages 2-4 halve the map down to 1x1, and the pooling is adaptive).
    Features are the 512 pooled activations.
    """

    def __init__(self, input_shape: tuple[int, ...], n_classes: int):
        super().__init__()
        from torchvision.models import resnet18  # on use: torchvision takes a second to import

        net = resnet18(weights=None, num_classes=n_classes)
        net.conv1 = nn.Conv2d(input_shape[0], 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.head = net.fc
        net.fc = nn.Identity()
        self.body = net
        self.feature_dim = 512


MODELS: dict[str, tuple[type[FeatureModel], bool]] = {  # name -> (class, needs (C, H, W) inputs)
    "mlp": (MLP, False),
    "smallcnn": (SmallCNN, True),
    "resnet18": (ResNet18, True),
    "lenet300100": (LeNet300100, False),
}


@torch.no_grad()
def init_weights(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialise every conv, linear and norm layer of ``model`` from ``generator``, in place.

    PyTorch's layer constructors draw from the global RNG, which docs/design.md#randomness forbids seeding.
    This redraws with an explicit generator, using the schemes the constructors would: He-normal
    (fan-out, ReLU) for convolutions as torchvision's ResNet does, PyTorch's default
    ``kaiming_uniform_(a=sqrt(5))`` and ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` bias for linear
    layers, ones/zeros for norms.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            m.reset_parameters() if hasattr(m, "reset_parameters") else None
            continue
        else:
            continue
        if m.bias is not None:
            bound = 1.0 / math.sqrt(m.weight[0].numel())
            nn.init.uniform_(m.bias, -bound, bound, generator=generator)
    return model


def build_model(name: str, input_shape: tuple[int, ...], n_classes: int, *, random_state: Any = 0) -> FeatureModel:
    """Build a freshly initialised model.

    Parameters
    ----------
    name : {'mlp', 'smallcnn', 'resnet18', 'lenet300100'}
        ``smallcnn`` (default embedder, CPU-friendly), ``resnet18`` (CIFAR-style ResNet-18),
        ``mlp`` (two hidden layers, any input), ``lenet300100`` (784-300-100-10 fully connected,
        for the weight side).
    input_shape : tuple of int
        One sample's shape, e.g. ``(1, 28, 28)``; ``(D,)`` for feature vectors (``mlp`` and
        ``lenet300100`` only).
    n_classes : int
        Number of logits.
    random_state : None, int or numpy Generator, default=0
        Seed of the weight initialisation.

    Returns
    -------
    FeatureModel
        ``forward(x)`` → logits (N, n_classes); ``features(x)`` → (N, model.feature_dim).

    Raises
    ------
    TopodataInputError
        Unknown name, or a convolutional model asked for non-image inputs.

    Examples
    --------
    >>> import torch
    >>> from topodata.nn import build_model
    >>> net = build_model("smallcnn", (1, 8, 8), 10)
    >>> net.features(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 128])
    """
    check_options(name, "model", tuple(MODELS))
    n_classes = check_scalar(n_classes, "n_classes", (int, np.integer), min_val=1)
    try:
        shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be a tuple of ints such as (1, 28, 28); got {input_shape!r}") from None
    if not shape or min(shape) < 1:
        raise TopodataInputError(f"input_shape must be non-empty and positive; got {shape}")
    cls, needs_image = MODELS[name]
    if needs_image and len(shape) != 3:
        raise TopodataInputError(
            f"model {name!r} needs image inputs (C, H, W); got input_shape {shape}. "
            "Use model='mlp' for feature vectors"
        )
    model = cls(shape, int(n_classes))
    gen = torch.Generator().manual_seed(derive_seed(check_random_state(random_state)))
    return init_weights(model, gen)
