"""Topologically critical compression (Balwani & Krzyston 2022).

A layer graph keeps its zeroth-order topology (one connected component, the same H0 diagram) as
long as its maximum spanning tree survives, so ``eta_tau = |W| / |MST(G)|`` is the largest
compression that *can* keep it. Everything here is computed from layer shapes alone, except
:func:`spanning_tree_retention` and :func:`top_weight_tree_overlap`, which look at real weights.
``|W|`` of a dense layer with m inputs and n outputs is ``m * n`` (``|MST| = m + n - 1``); of a
recurrent layer with ``l`` units ``l**2`` (``|MST| = 2l - 1``). A set of layers has
``eta = sum |W| / sum |MST|``.

Two readings of the convolution formula
---------------------------------------
The paper gives ``eta_tau = n * f1 * f2 / (m + n - 1)`` for an ``f1 x f2`` kernel, ``m`` and ``n``
"the input and output sizes of the spatial activations".

``reading="paper"`` (default)
    The graph of one (input channel, output channel) pair: ``n = H' * W'`` output positions, each
    joined to the ``f1 * f2`` taps of its window, over ``m = (H' + 2p) * (W' + 2p)`` input positions
    (the zero-padded map the windows slide over, at the output's resolution), so
    ``|W| = n * f1 * f2`` and ``|MST| = m + n - 1``. A group of conv layers sums one such graph per
    layer. 1x1 convolutions (projection shortcuts) are listed but left out of the group totals:
    the kernel-window formula does not describe them, and the paper's ResNet totals hold only
    without them. This reading reproduces every ResNet entry of the paper's Table 1 and its
    64x64 VGG-11 entries; ``scripts/report_table1.py`` compares all of them.
``reading="unrolled"``
    The whole unrolled (Toeplitz) graph: ``m = C_in * H * W`` and ``n = C_out * H' * W'``
    activations, each output joined to the ``C_in * f1 * f2`` inputs under its kernel, so
    ``|W| = n * C_in * f1 * f2`` (a shared weight counted once per use; taps on padding too).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .. import _validation as V
from .graphs import (
    CONV_GRAPHS,
    conv_spatial_sizes,
    maximum_spanning_tree,
    model_graphs,
    model_trees,
    prunable_layers,
    tree_overlap,
)

# torch is imported inside the functions that take a model: the shape-only path
# (`topodata np --critical --arch`) then starts without it.

__all__ = [
    "ARCHITECTURES",
    "READINGS",
    "LayerShape",
    "CompressionTable",
    "critical_ratio_dense",
    "critical_ratio_conv",
    "critical_ratio_recurrent",
    "architecture_shapes",
    "model_shapes",
    "critical_compression",
    "tree_overlap_lower_bound",
    "top_weight_tree_overlap",
    "spanning_tree_retention",
]

ARCHITECTURES = ("vgg11", "resnet20", "resnet18", "lenet300100")
READINGS = ("paper", "unrolled")


def _check_count(value: Any, name: str) -> int:
    V.check_scalar(value, name, numbers.Integral, min_val=1)
    return int(value)


def critical_ratio_dense(m: int, n: int) -> float:
    """``eta_tau = m*n / (m + n - 1)`` of a fully connected layer with m inputs and n outputs.

    >>> critical_ratio_dense(784, 300)  # doctest: +ELLIPSIS
    217.17...
    """
    m, n = _check_count(m, "m"), _check_count(n, "n")
    return m * n / (m + n - 1)


def critical_ratio_conv(m: int, n: int, f1: int, f2: int, *, in_channels: int = 1) -> float:
    """``eta_tau = n * in_channels * f1 * f2 / (m + n - 1)`` (see the module docstring).

    ``in_channels = 1`` is the paper's ``n * f1 * f2 / (m + n - 1)`` with ``m``, ``n`` the input
    and output positions of one channel pair; the unrolled reading passes ``m``, ``n`` as
    activations (``C * H * W``) and the layer's ``in_channels``.

    >>> round(critical_ratio_conv(34 * 34, 32 * 32, 3, 3), 4)  # first VGG-11 layer on CIFAR
    4.2295
    """
    m, n = _check_count(m, "m"), _check_count(n, "n")
    f1, f2, c = _check_count(f1, "f1"), _check_count(f2, "f2"), _check_count(in_channels, "in_channels")
    return n * c * f1 * f2 / (m + n - 1)


def critical_ratio_recurrent(hidden: int) -> float:
    """``eta_tau = l**2 / (2l - 1)`` of a recurrent layer with ``l`` hidden units."""
    ell = _check_count(hidden, "hidden")
    return ell * ell / (2 * ell - 1)


@dataclass(frozen=True)
class LayerShape:
    """Shape of one layer, enough for its critical compression ratio.

    ``kind`` is ``'dense'`` (``in_channels`` = m inputs, ``out_channels`` = n outputs),
    ``'conv'`` (channels, kernel, the spatial sizes of its input and output activations and its
    zero padding per side) or ``'recurrent'`` (``in_channels = out_channels`` = hidden units).
    ``m``, ``n``, ``n_edges``, ``n_tree`` and ``eta`` are those of the unrolled graph;
    :meth:`edges`, :meth:`tree` and :meth:`ratio` take the reading.
    """

    name: str
    kind: str
    in_channels: int
    out_channels: int
    kernel: tuple[int, ...] = ()
    in_size: tuple[int, ...] = ()
    out_size: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()

    @property
    def m(self) -> int:
        """Input-side vertices of the (unrolled) layer graph."""
        return self.in_channels * math.prod(self.in_size)

    @property
    def n(self) -> int:
        """Output-side vertices of the (unrolled) layer graph."""
        return self.out_channels * math.prod(self.out_size)

    @property
    def n_params(self) -> int:
        """Distinct weights (the layer's ``weight.numel()``)."""
        return self.in_channels * self.out_channels * math.prod(self.kernel)

    @property
    def n_edges(self) -> int:
        """``|W|``: edges of the layer graph (uses of a shared conv weight counted each)."""
        if self.kind == "conv":
            return self.n * self.in_channels * math.prod(self.kernel)
        return self.m * self.n

    @property
    def n_tree(self) -> int:
        """``|MST(G)|`` = vertices - 1 (``2l - 1`` for a recurrent layer)."""
        return (2 * self.m - 1) if self.kind == "recurrent" else self.m + self.n - 1

    @property
    def eta_channel(self) -> float:
        """``params / (C_in + C_out - 1)``: the compression at which the *channel* graph's tree
        (what T-IMP keeps under ``conv='aggregate'``, one tap per tree edge) is all that is left.
        Equals ``eta`` for dense layers."""
        return self.n_params / (self.in_channels + self.out_channels - 1)

    @property
    def eta(self) -> float:
        if self.kind == "conv":
            return critical_ratio_conv(self.m, self.n, *_two(self.kernel), in_channels=self.in_channels)
        if self.kind == "recurrent":
            return critical_ratio_recurrent(self.m)
        return critical_ratio_dense(self.m, self.n)

    @property
    def pair_sizes(self) -> tuple[int, int]:
        """``(m, n)`` of one channel pair's graph (the paper's reading): padded and plain output map."""
        pad = self.padding or (0,) * len(self.out_size)
        return math.prod(o + 2 * p for o, p in zip(self.out_size, pad)), math.prod(self.out_size)

    @property
    def pointwise(self) -> bool:
        """A 1x1 convolution (left out of the paper reading's group totals)."""
        return self.kind == "conv" and math.prod(self.kernel) == 1

    def edges(self, reading: str = "paper") -> int:
        """``|W|`` under ``reading`` (conv layers differ; see the module docstring)."""
        if self.kind == "conv" and reading == "paper":
            return self.pair_sizes[1] * math.prod(self.kernel)
        return self.n_edges

    def tree(self, reading: str = "paper") -> int:
        """``|MST|`` under ``reading``."""
        if self.kind == "conv" and reading == "paper":
            m, n = self.pair_sizes
            return m + n - 1
        return self.n_tree

    def ratio(self, reading: str = "paper") -> float:
        """``eta_tau = edges / tree`` of this layer under ``reading``."""
        if self.kind == "conv" and reading == "paper":
            return critical_ratio_conv(*self.pair_sizes, *_two(self.kernel))
        return self.eta

    def describe(self) -> str:
        if self.kind == "conv":
            k = "x".join(map(str, self.kernel))
            size = "x".join(map(str, self.in_size))
            return f"{self.in_channels}->{self.out_channels} k{k} @{size}"
        return f"{self.in_channels}->{self.out_channels}"


def _two(kernel: tuple[int, ...]) -> tuple[int, int]:
    """``(f1, f2)`` of a kernel of any rank (1-D -> (f, 1); 3-D -> (f1, f2*f3))."""
    if len(kernel) == 1:
        return kernel[0], 1
    return kernel[0], math.prod(kernel[1:])


# ----------------------------------------------------------------------------- architectures
def _conv_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


class _ShapeBuilder:
    """Tracks the activation size while layers are appended (no torch needed)."""

    def __init__(self, c: int, h: int, w: int):
        self.c, self.hw, self.layers = c, (h, w), []

    def conv(self, name: str, c_out: int, k: int = 3, s: int = 1, p: int = 1, *, c_in: int | None = None,
             hw: tuple[int, int] | None = None) -> tuple[int, int]:
        c_in = self.c if c_in is None else c_in
        hw = self.hw if hw is None else hw
        out = (_conv_out(hw[0], k, s, p), _conv_out(hw[1], k, s, p))
        self.layers.append(LayerShape(name, "conv", c_in, c_out, (k, k), hw, out, (p, p)))
        self.c, self.hw = c_out, out
        return out

    def pool(self, k: int = 2) -> None:
        self.hw = (self.hw[0] // k, self.hw[1] // k)

    def dense(self, name: str, n_in: int, n_out: int) -> None:
        self.layers.append(LayerShape(name, "dense", n_in, n_out))


VGG11_HIDDEN = {32: (), 64: (1024, 1024)}  # input side -> hidden widths of the classifier


def _vgg11(b: _ShapeBuilder, n_classes: int) -> None:
    # 8 3x3 convs and 5 max-pools, then a classifier on the flattened last map (512 inputs at 32x32,
    # 2048 at 64x64). Its hidden layers follow the paper's Table 1: none on CIFAR (dense entry
    # 512*10/521 = 9.8273), two of 1024 at 64x64 (Tiny-ImageNet dense entry 528.3911 is exactly
    # 2048-1024-1024-200); other sizes use the nearest of the two.
    plan = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    side = min(b.hw)
    i = 0
    for v in plan:
        if v == "M":
            b.pool(2)
        else:
            b.conv(f"features.{i}", int(v))
            i += 1
    widths = [b.c * b.hw[0] * b.hw[1], *VGG11_HIDDEN[32 if side < 48 else 64], n_classes]
    names = ["classifier"] if len(widths) == 2 else [f"classifier.{j}" for j in range(len(widths) - 1)]
    for name, n_in, n_out in zip(names, widths, widths[1:]):
        b.dense(name, n_in, n_out)


def _resnet(b: _ShapeBuilder, n_classes: int, widths: Sequence[int], blocks: int, shortcut_conv: bool) -> None:
    b.conv("conv1", widths[0])
    for stage, width in enumerate(widths, start=1):
        for j in range(blocks):
            stride = 2 if (stage > 1 and j == 0) else 1
            c_in, hw_in = b.c, b.hw
            b.conv(f"layer{stage}.{j}.conv1", width, 3, stride, 1)
            b.conv(f"layer{stage}.{j}.conv2", width, 3, 1, 1)
            if shortcut_conv and (stride != 1 or c_in != width):
                b.conv(f"layer{stage}.{j}.shortcut.0", width, 1, stride, 0, c_in=c_in, hw=hw_in)
    b.dense("linear", b.c, n_classes)  # after global average pooling


def architecture_shapes(arch: str, *, input_shape: Sequence[int], n_classes: int) -> list[LayerShape]:
    """Layer shapes of a named architecture for an input of shape ``(C, H, W)``.

    Parameters
    ----------
    arch : {'vgg11', 'resnet20', 'resnet18', 'lenet300100'}
        ``vgg11``: VGG-11 (8 convs, 5 pools, a classifier on the flattened map: one linear layer
        below 48x48 inputs, 2048-1024-1024-classes at 64x64, as in the paper's Table 1).
        ``resnet20``: He et al.'s CIFAR ResNet-20 (16/32/64 channels, 3 blocks per stage,
        parameter-free "option A" shortcuts). ``resnet18``: the CIFAR-style ResNet-18 (3x3 stem,
        no max-pool, 1x1 conv shortcuts). ``lenet300100``: 784-300-100-classes MLP (on the
        flattened input).
    input_shape : sequence of 3 ints
    n_classes : int

    Returns
    -------
    list of LayerShape
        In forward order; these are shape specs, not trainable models.
    """
    V.check_options(arch, "arch", ARCHITECTURES)
    shape = _check_input_shape(input_shape)
    n_classes = _check_count(n_classes, "n_classes")
    b = _ShapeBuilder(*shape)
    if arch == "vgg11":
        if min(shape[1:]) < 32:
            raise V.TopodataInputError(f"vgg11 pools 5 times and needs inputs of at least 32x32; got {shape}")
        _vgg11(b, n_classes)
    elif arch == "resnet20":
        _resnet(b, n_classes, (16, 32, 64), 3, shortcut_conv=False)
    elif arch == "resnet18":
        _resnet(b, n_classes, (64, 128, 256, 512), 2, shortcut_conv=True)
    else:
        n_in = math.prod(shape)
        b.dense("fc1", n_in, 300)
        b.dense("fc2", 300, 100)
        b.dense("fc3", 100, n_classes)
    return b.layers


def _check_input_shape(input_shape: Any, *, images: bool = True) -> tuple[int, ...]:
    """Positive ints; ``(C, H, W)`` when ``images``, any length otherwise (feature vectors)."""
    what = "(C, H, W)" if images else "a tuple of ints such as (1, 28, 28) or (64,)"
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise TypeError(f"input_shape must be {what}; got {input_shape!r}") from None
    if (images and len(shape) != 3) or not shape or min(shape) < 1:
        raise V.TopodataInputError(f"input_shape must be {what} with positive sizes; got {input_shape!r}")
    return shape


def model_shapes(model: Any, input_shape: Sequence[int]) -> list[LayerShape]:
    """Layer shapes of a real model's ``nn.Linear`` / ``nn.Conv*`` layers (one forward pass).

    The spatial sizes come from forward hooks on a zero input of ``input_shape``.
    """
    import torch.nn as nn

    shape = _check_input_shape(input_shape, images=False)
    layers = prunable_layers(model)
    seen = conv_spatial_sizes(model, shape)
    out = []
    for name, m in layers:
        if isinstance(m, nn.Linear):
            out.append(LayerShape(name, "dense", m.in_features, m.out_features))
        else:
            in_size, out_size = seen[name]
            out.append(LayerShape(name, "conv", m.in_channels, m.out_channels, tuple(m.kernel_size),
                                  in_size, out_size, _padding(m)))
    return out


def _padding(module: Any) -> tuple[int, ...]:
    """Zero padding per side of a conv module (``'same'`` = half the dilated kernel, ``'valid'`` = 0)."""
    if module.padding == "valid":
        return (0,) * len(module.kernel_size)
    if module.padding == "same":
        return tuple(d * (k - 1) // 2 for k, d in zip(module.kernel_size, module.dilation))
    return tuple(int(p) for p in module.padding)


# ----------------------------------------------------------------------------- the table
@dataclass
class CompressionTable:
    """Critical compression per layer and per group of layers, under one reading of conv layers.

    ``retention`` (optional) maps layer name -> fraction of that layer's spanning-tree edges that
    a pruning mask keeps (:func:`spanning_tree_retention`).
    """

    title: str
    layers: list[LayerShape]
    retention: dict[str, float] | None = None
    reading: str = "paper"

    def _counted(self, s: LayerShape) -> bool:
        return not (self.reading == "paper" and s.pointwise)

    def groups(self) -> dict[str, float]:
        """``eta`` of all conv layers, all dense layers and the whole network (sum |W| / sum |MST|)."""
        out = {}
        for label, keep in (("conv", ("conv",)), ("dense", ("dense",)), ("network", ("conv", "dense", "recurrent"))):
            sel = [s for s in self.layers if s.kind in keep and self._counted(s)]
            if sel:
                out[label] = sum(s.edges(self.reading) for s in sel) / sum(s.tree(self.reading) for s in sel)
        return out

    def _mn(self, s: LayerShape) -> tuple[int, int]:
        return s.pair_sizes if (s.kind == "conv" and self.reading == "paper") else (s.m, s.n)

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for s in self.layers:
            m, n = self._mn(s)
            row = {"name": s.name, "kind": s.kind, "shape": s.describe(), "m": m, "n": n,
                   "params": s.n_params, "edges": s.edges(self.reading), "tree_edges": s.tree(self.reading),
                   "eta": s.ratio(self.reading), "eta_channel": s.eta_channel, "in_groups": self._counted(s)}
            if self.retention is not None and s.name in self.retention:
                row["tree_kept"] = self.retention[s.name]
            rows.append(row)
        return {"title": self.title, "reading": self.reading, "layers": rows, "groups": self.groups()}

    def table(self) -> str:
        w = max(10, *(len(s.name) for s in self.layers))
        ret = self.retention is not None
        head = (f"{'layer':<{w}}  {'kind':<5} {'shape':<22} {'m':>8} {'n':>8} {'|W|':>11} "
                f"{'|MST|':>8} {'eta_tau':>9} {'eta_ch':>8}" + ("  tree_kept" if ret else ""))
        rows = [self.title, head]
        for s in self.layers:
            m, n = self._mn(s)
            mark = "" if self._counted(s) else "*"
            line = (f"{s.name + mark:<{w}}  {s.kind:<5} {s.describe():<22} {m:>8} {n:>8} "
                    f"{s.edges(self.reading):>11} {s.tree(self.reading):>8} {s.ratio(self.reading):>9.4f} "
                    f"{s.eta_channel:>8.2f}")
            if ret:
                kept = self.retention.get(s.name)
                line += f"  {kept:>9.4f}" if kept is not None else f"  {'-':>9}"
            rows.append(line)
        rows.append("  ".join(f"eta_tau[{k}] = {v:.4f}" for k, v in self.groups().items()))
        if self.reading == "paper":
            rows.append("eta_tau: |W| / |MST| of one channel pair's graph for conv layers (n = H'*W' outputs, "
                        "m = (H'+2p)*(W'+2p) padded inputs; * = 1x1, not in the totals); eta_ch: weights / "
                        "(C_in + C_out - 1), the channel graph's tree")
        else:
            rows.append("eta_tau: |W| / |MST| of the unrolled layer graph (m = C_in*H*W, n = C_out*H'*W'); "
                        "eta_ch: weights / (C_in + C_out - 1), the channel graph's tree")
        return "\n".join(rows)


def critical_compression(
    arch_or_model: Any,
    *,
    input_shape: Sequence[int],
    n_classes: int | None = None,
    masks: bool = False,
    conv: str = "aggregate",
    reading: str = "paper",
) -> CompressionTable:
    """Critical compression ratio ``eta_tau`` per layer, for conv, dense and the whole network.

    Parameters
    ----------
    arch_or_model : str or torch.nn.Module
        A name of :data:`ARCHITECTURES` (shapes only; needs ``n_classes``) or a model.
    input_shape : sequence of 3 ints
        ``(C, H, W)`` of one input; decides the activation sizes ``m``, ``n`` of conv layers.
    n_classes : int, optional
        Output classes, for a named architecture.
    masks : bool, default=False
        For a model: add each layer's spanning-tree retention by its pruning mask
        (:func:`spanning_tree_retention`; 1.0 for unpruned layers).
    conv : str, default='aggregate'
        Layer graph used for the retention of conv layers.
    reading : {'paper', 'unrolled'}, default='paper'
        How a conv layer's ``|W|`` and ``|MST|`` are counted (see the module docstring).

    Examples
    --------
    >>> t = critical_compression("lenet300100", input_shape=(1, 28, 28), n_classes=10)
    >>> round(t.groups()["network"], 2)
    167.32
    >>> t = critical_compression("resnet20", input_shape=(3, 32, 32), n_classes=100)
    >>> {k: round(v, 4) for k, v in t.groups().items()}  # Table 1 of the paper: 4.1508, 39.2638, 4.4389
    {'conv': 4.1508, 'dense': 39.2638, 'network': 4.4389}
    """
    V.check_options(reading, "reading", READINGS)
    if isinstance(arch_or_model, str):
        if n_classes is None:
            raise V.TopodataInputError(f"n_classes is needed for architecture {arch_or_model!r}")
        shapes = architecture_shapes(arch_or_model, input_shape=input_shape, n_classes=n_classes)
        title = f"{arch_or_model} on {'x'.join(map(str, input_shape))} inputs, {n_classes} classes"
        return CompressionTable(title, shapes, reading=reading)
    shapes = model_shapes(arch_or_model, input_shape)
    title = f"{type(arch_or_model).__name__} on {'x'.join(map(str, input_shape))} inputs"
    retention = spanning_tree_retention(arch_or_model, conv=conv) if masks else None
    return CompressionTable(title, shapes, retention, reading)


# ----------------------------------------------------------------------------- trees and masks
def spanning_tree_retention(
    model: Any, masks: dict[str, Any] | None = None, *, conv: str = "aggregate",
    trees: dict[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Fraction of each layer's maximum-spanning-tree edges whose weight a mask keeps.

    Parameters
    ----------
    model : torch.nn.Module
        The tree is that of the layer graph on the model's *effective* weights (pruned = 0).
    masks : dict of name -> bool array of the weight's shape, optional
        The masks to judge. Default: the model's own ``weight_mask`` buffers
        (``torch.nn.utils.prune``); then the tree is that of the pruned network, so a value
        below 1 means that the kept graph is disconnected (``1 - (components - 1) / (V - 1)``).
        The IMP driver passes the *next* round's masks with the trained, not yet pruned
        weights, which measures how much of the trained tree a pruning step keeps.
    conv : str, default='aggregate'
        Layer graph of convolutions (:mod:`topodata.weights.graphs`).
    trees : dict of name -> int array, optional
        The trees' weight indices if already computed (:func:`~topodata.weights.graphs.model_trees`
        of the same model and ``conv``); computed when not given.

    Returns
    -------
    dict of name -> float in [0, 1]
    """
    V.check_options(conv, "conv", CONV_GRAPHS)
    layers = dict(prunable_layers(model))
    out = {}
    for name, idx in (model_trees(model, conv=conv) if trees is None else trees).items():
        if masks is not None and name in masks:
            mask = masks[name]
        else:
            mask = getattr(layers[name], "weight_mask", None)
        if mask is None:
            out[name] = 1.0
            continue
        flat = np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask).reshape(-1)
        out[name] = float(flat[idx].astype(bool).mean()) if idx.size else 1.0
    return out


def tree_overlap_lower_bound(m: int, n: int, *, density: float = 1.0) -> float:
    """Balwani–Krzyston lower bound on E[fraction of the MST inside the top-alpha weights].

    For a fully connected layer with ``m`` inputs and ``n`` outputs, ``alpha = |MST| = m + n - 1``
    and ``j = min(m, n)``::

        E[X] >= 1 / (m + n - 1) * sum_{i=0}^{j} (m - i)(n - i) / (density * m * n - i)

    capped at 1; ``E[X] = 1`` for ``j = 1`` (a star is its own tree). ``density`` is the fraction
    of the layer's weights that are non-zero (a layer already pruned); it must leave at least
    ``alpha`` weights.

    Notes
    -----
    The density variant is implemented as docs/weights.md#tree-overlap-bound states it (``m*n - i`` replaced by
    ``density*m*n - i``, numerator unchanged). It grows like ``1/density`` and is *not* a valid
    bound at low density: for a 30x30 layer at density 0.2 with i.i.d. uniform weights it gives
    0.928, while the mean overlap over 200 random layers is 0.848 (at density 1 the bound, 0.16
    for 20x10, is far below the measured 0.83). Treat the density variant as indicative only.

    Examples
    --------
    >>> round(tree_overlap_lower_bound(2, 2), 6)  # (1 + 1/3 + 0) / 3
    0.444444
    """
    m, n = _check_count(m, "m"), _check_count(n, "n")
    V.check_scalar(density, "density", numbers.Real, min_val=0, max_val=1, include_min=False)
    j = min(m, n)
    if j == 1:
        return 1.0
    alpha = m + n - 1
    total = density * m * n
    if total < alpha:
        raise V.TopodataInputError(
            f"density={density} leaves {total:g} weights, fewer than the {alpha} spanning-tree edges "
            f"of a {m}x{n} layer; the bound needs density * m * n >= m + n - 1"
        )
    i = np.arange(j + 1, dtype=np.float64)
    value = float(np.sum((m - i) * (n - i) / (total - i)) / alpha)
    return min(1.0, value)


def top_weight_tree_overlap(model: Any, *, conv: str = "aggregate") -> dict[str, float]:
    """Measured fraction of each layer's maximum spanning tree inside its top-alpha edges by |w|.

    ``alpha`` = number of tree edges; the companion of :func:`tree_overlap_lower_bound`. Edges are
    ranked by their graph weight (effective ``|w|``, pruned = 0), ties by edge order.
    """
    V.check_options(conv, "conv", CONV_GRAPHS)
    return {g.name: tree_overlap(g, maximum_spanning_tree(g)[1]) for g in model_graphs(model, conv=conv)}
