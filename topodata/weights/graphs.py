"""A network layer as a weighted bipartite graph, and its maximum spanning tree.

Neural persistence (Rieck et al. 2019) and T-IMP (Balwani & Krzyston 2022) both look at one layer
at a time as a bipartite graph between the layer's input units and output units, weighted by the
absolute weights. This module turns ``nn.Linear`` / ``nn.Conv*`` modules into such graphs (edge
lists) and asks the persistence core (:func:`topodata.topology.spanning_tree_pairs`) for the
maximum spanning tree; it holds no union-find or spanning-tree code of its own.

How a layer becomes a graph
---------------------------
``linear``
    The complete bipartite graph ``K(n_in, n_out)``: one edge per weight ``W[o, i]``.
``conv="aggregate"`` (default for convolutions)
    The *channel graph*: one vertex per input and per output channel, one edge per channel pair,
    weighted by the **largest** ``|w|`` of that pair's kernel. Why max and not the L2 norm: in the
    superlevel filtration that neural persistence uses, the channel pair becomes connected exactly
    when its strongest tap enters, so the max-aggregate is the unrolled (Toeplitz) graph with every
    feature map contracted to one vertex, and its weights stay on the same ``|w|`` scale as the
    dense layers (which matters for ``normalization="global"``). The edge's *representative
    weight* (the one T-IMP keeps) is that strongest tap.
``conv="aggregate-l2"``
    The same channel graph weighted by the L2 norm of each kernel, representative = strongest tap.
    Note that under global normalisation the L2 norms (up to ``sqrt(f1*f2)`` times one tap)
    dominate the maximum, so per-layer normalisation is the sensible companion.
``conv="toeplitz"`` (``nn.Conv2d`` only, needs the input's spatial size)
    The unrolled graph (docs/weights.md#layer-graphs): vertices are the ``C_in*H*W`` input and ``C_out*H'*W'``
    output activations, one edge per (output position, kernel tap) that does not fall on padding;
    a shared weight labels many edges. The core builds an ``(n, n)`` dense matrix, so this is for
    small inputs only (≤ ``TOEPLITZ_MAX_VERTICES`` vertices per layer, e.g. 8x8 digits); it is not
    the default because a CIFAR ResNet-18 layer would have ~0.5 million vertices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _validation as V
from ..topology import spanning_tree_pairs

# torch is imported inside the functions that take a model: the shape-only path
# (`topodata np --critical --arch`) then starts without it.

__all__ = [
    "CONV_GRAPHS",
    "LayerGraph",
    "TOEPLITZ_MAX_VERTICES",
    "prunable_layers",
    "effective_weight",
    "layer_graph",
    "model_graphs",
    "maximum_spanning_tree",
    "tree_weight_index",
    "model_trees",
    "tree_overlap",
]

CONV_GRAPHS = ("aggregate", "aggregate-l2", "toeplitz")
TOEPLITZ_MAX_VERTICES = 4096


@dataclass(frozen=True)
class LayerGraph:
    """One layer's bipartite graph as an edge list.

    Attributes
    ----------
    name : str
        The module's name in ``model.named_modules()``.
    kind : {'linear', 'conv'}
    n_in, n_out : int
        Vertices on the input side (ids ``0..n_in-1``) and output side (ids ``0..n_out-1``).
    src, dst : ndarray of int64, shape (n_edges,)
        Input-side and output-side vertex of each edge.
    w : ndarray of float64, shape (n_edges,)
        Non-negative edge weight (``|w|`` or its kernel aggregate), *not* normalised.
    weight_index : ndarray of int64, shape (n_edges,)
        Flat index into ``module.weight`` of the weight each edge stands for.
    weight_shape : tuple of int
        Shape of ``module.weight``.
    """

    name: str
    kind: str
    n_in: int
    n_out: int
    src: np.ndarray
    dst: np.ndarray
    w: np.ndarray
    weight_index: np.ndarray
    weight_shape: tuple[int, ...]

    @property
    def n_vertices(self) -> int:
        return self.n_in + self.n_out


def prunable_layers(model: Any) -> list[tuple[str, Any]]:
    """``(name, module)`` of every ``nn.Linear`` and ``nn.Conv1d/2d/3d``, in module order.

    These are the layers neural persistence is computed for and IMP prunes (their ``weight``
    only; biases and normalisation layers are left dense, as in the lottery-ticket papers).
    """
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    layers = [(n, m) for n, m in model.named_modules()
              if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    for name, m in layers:
        if getattr(m, "groups", 1) != 1:
            raise V.TopodataInputError(
                f"layer {name!r} is a grouped convolution (groups={m.groups}); its graph is not "
                "bipartite-complete and is not supported. Use a model without grouped convolutions"
            )
    if not layers:
        raise V.TopodataInputError(
            f"model {type(model).__name__} has no nn.Linear or nn.Conv layer to analyse"
        )
    return layers


def effective_weight(module: Any):
    """The weight the layer computes with: ``weight_orig * weight_mask`` when pruned.

    Read from the reparametrisation of ``torch.nn.utils.prune`` directly, because the plain
    ``module.weight`` attribute is only refreshed by the next forward pass.
    """
    mask = getattr(module, "weight_mask", None)
    if mask is not None and hasattr(module, "weight_orig"):
        return (module.weight_orig * mask).detach()
    return module.weight.detach()


def layer_graph(
    name: str, module: Any, *, conv: str = "aggregate", input_hw: tuple[int, int] | None = None
) -> LayerGraph:
    """Bipartite graph of one ``nn.Linear`` / ``nn.Conv*`` layer (see the module docstring)."""
    import torch
    import torch.nn as nn

    V.check_options(conv, "conv", CONV_GRAPHS)
    if not isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        raise TypeError(f"layer {name!r} must be nn.Linear or nn.Conv1d/2d/3d; got {type(module).__name__}")
    W = effective_weight(module).abs().to(torch.float64).cpu()
    shape = tuple(W.shape)
    if isinstance(module, nn.Linear) or (W.ndim > 2 and conv in ("aggregate", "aggregate-l2")):
        n_out, n_in = shape[0], shape[1]
        if W.ndim == 2:
            A, rep = W, torch.arange(n_out * n_in).reshape(n_out, n_in)
        else:
            K = W.reshape(n_out, n_in, -1)
            best = K.argmax(dim=2)
            A = K.amax(dim=2) if conv == "aggregate" else torch.linalg.vector_norm(K, dim=2)
            rep = (torch.arange(n_out * n_in).reshape(n_out, n_in) * K.shape[2]) + best
        dst, src = np.divmod(np.arange(n_out * n_in, dtype=np.int64), n_in)
        kind = "linear" if W.ndim == 2 else "conv"
        return LayerGraph(name, kind, n_in, n_out, src, dst, A.numpy().ravel(),
                          rep.numpy().ravel().astype(np.int64), shape)
    if not isinstance(module, nn.Conv2d):
        raise V.TopodataInputError(
            f"conv='toeplitz' supports nn.Conv2d only; layer {name!r} is {type(module).__name__}. "
            "Use conv='aggregate'"
        )
    return _toeplitz_graph(name, module, W, input_hw)


def _toeplitz_graph(name: str, module: Any, W, input_hw) -> LayerGraph:
    """Unrolled graph of a Conv2d: ``F.unfold`` of an id image gives each output's input taps."""
    import torch
    import torch.nn.functional as F

    if input_hw is None:
        raise V.TopodataInputError(
            f"conv='toeplitz' needs the input size of layer {name!r}; pass input_shape=(C, H, W)"
        )
    c_out, c_in, kh, kw = W.shape
    H, Wd = input_hw
    if isinstance(module.padding, str) or module.padding_mode != "zeros":
        raise V.TopodataInputError(
            f"conv='toeplitz' needs numeric zero padding; layer {name!r} has "
            f"padding={module.padding!r}, padding_mode={module.padding_mode!r}"
        )
    # Input-activation ids 1..C*H*W; padding unfolds to 0 and marks taps that have no edge.
    ids = torch.arange(1, c_in * H * Wd + 1, dtype=torch.float64).reshape(1, c_in, H, Wd)
    taps = F.unfold(ids, (kh, kw), dilation=module.dilation, padding=module.padding,
                    stride=module.stride)[0].round().long()  # (c_in*kh*kw, L)
    L = taps.shape[1]
    n_in, n_out = c_in * H * Wd, c_out * L
    if n_in + n_out > TOEPLITZ_MAX_VERTICES:
        raise V.TopodataInputError(
            f"conv='toeplitz' graph of layer {name!r} has {n_in + n_out} vertices (limit "
            f"{TOEPLITZ_MAX_VERTICES}); use conv='aggregate' or a smaller input"
        )
    r = c_in * kh * kw
    src = taps.T.reshape(1, L, r).expand(c_out, L, r)  # input id + 1 per (out ch, position, tap)
    dst = (torch.arange(c_out).reshape(c_out, 1, 1) * L + torch.arange(L).reshape(1, L, 1)).expand(c_out, L, r)
    widx = (torch.arange(c_out).reshape(c_out, 1, 1) * r + torch.arange(r).reshape(1, 1, r)).expand(c_out, L, r)
    keep = src > 0
    src, dst, widx = src[keep] - 1, dst[keep], widx[keep]
    w = W.reshape(-1)[widx]
    return LayerGraph(name, "conv", n_in, n_out, src.numpy().astype(np.int64),
                      dst.numpy().astype(np.int64), w.numpy(), widx.numpy().astype(np.int64),
                      tuple(W.shape))


def conv_spatial_sizes(
    model: Any, input_shape: tuple[int, ...]
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Spatial (input, output) sizes of every conv layer, from one forward pass of a zero batch.

    Forward hooks record them; the model's train/eval mode is restored afterwards.
    """
    import torch
    import torch.nn as nn

    sizes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    hooks = [
        m.register_forward_hook(
            lambda mod, inp, out, n=n: sizes.__setitem__(n, (tuple(inp[0].shape[2:]), tuple(out.shape[2:])))
        )
        for n, m in model.named_modules()
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
    ]
    p = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), dtype=p.dtype, device=p.device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return sizes


def model_graphs(
    model: Any, *, conv: str = "aggregate", input_shape: tuple[int, ...] | None = None
) -> list[LayerGraph]:
    """The :class:`LayerGraph` of every prunable layer of ``model`` (see :func:`prunable_layers`)."""
    V.check_options(conv, "conv", CONV_GRAPHS)
    layers = prunable_layers(model)
    sizes = {}
    if conv == "toeplitz":
        if input_shape is None:
            raise V.TopodataInputError(
                "conv='toeplitz' needs input_shape=(C, H, W) to size the unrolled graphs"
            )
        shape = tuple(int(s) for s in input_shape)
        sizes = {n: io[0] for n, io in conv_spatial_sizes(model, shape).items()}
    return [layer_graph(n, m, conv=conv, input_hw=sizes.get(n)) for n, m in layers]


def maximum_spanning_tree(graph: LayerGraph, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Persistence pairs ``(1, w_e)`` and edge ids of the graph's maximum spanning tree.

    ``w`` (default ``graph.w``) are the filtration values, e.g. the normalised ``|w| / max|w|``.
    Thin wrapper over :func:`topodata.topology.spanning_tree_pairs` with ``maximum=True``: output
    vertices are shifted by ``n_in`` so both sides share one id space.
    """
    return spanning_tree_pairs(graph.src, graph.dst + graph.n_in, graph.w if w is None else w,
                               graph.n_vertices, maximum=True)


def tree_weight_index(graph: LayerGraph, tree_ids: np.ndarray | None = None) -> np.ndarray:
    """Flat indices into ``module.weight`` of the weights on the layer's maximum spanning tree.

    ``tree_ids`` (edge ids from :func:`maximum_spanning_tree`) are computed when not given. This is
    the one mapping from tree edges to weights, used by T-IMP's masks and by tree retention.
    """
    ids = maximum_spanning_tree(graph)[1] if tree_ids is None else tree_ids
    return graph.weight_index[ids]


def model_trees(model: Any, *, conv: str = "aggregate") -> dict[str, np.ndarray]:
    """:func:`tree_weight_index` of every prunable layer: one graph and one tree per layer."""
    return {g.name: tree_weight_index(g) for g in model_graphs(model, conv=conv)}


def tree_overlap(graph: LayerGraph, tree_ids: np.ndarray) -> float:
    """Fraction of the tree's edges among the layer's top-alpha edges by weight (alpha = tree size).

    Edges are ranked by ``graph.w``, ties by edge order; 1.0 for an empty tree.
    """
    if not tree_ids.size:
        return 1.0
    top = np.argsort(-graph.w, kind="stable")[: tree_ids.size]
    return float(np.isin(tree_ids, top).mean())
