"""Neural persistence of a network's layers (Rieck et al., ICLR 2019; docs/weights.md#neural-persistence).

For every ``nn.Linear`` / ``nn.Conv*`` layer the bipartite layer graph of
:mod:`topodata.weights.graphs` is filtered by *decreasing* normalised weight ``w' = |w| / max|w|``:
all vertices are born at 1, and each edge of the maximum spanning tree merges two components and
gives the diagram point ``(1, w')``. The layer's neural persistence is the p-norm of the
persistences, ``NP_p = (sum |1 - w'|^p)^(1/p)``; dividing it by ``(n_k + n_{k+1} - 1)^(1/p)``, its
value when every tree edge has ``w' = 0``, gives a number in [0, 1] comparable across layer sizes.

Normalisation of the weights
----------------------------
``normalization="global"`` (default, as Rieck et al.): ``max|w|`` over *all* analysed layers, so a
layer whose weights are small next to the others' has high persistence; NP values of different
layers of one network are on one scale. ``"layer"``: ``max|w|`` per layer, so every layer has at
least one edge at ``w' = 1`` and only the *shape* of its weight distribution counts. A layer (or
network) whose weights are all zero gets ``w' = 0`` everywhere (0/0 read as 0).

Pruned weights (``torch.nn.utils.prune``) count as weight 0: the graph stays complete, so the
persistence of a pruned layer rises where pruning disconnects units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _validation as V
from .graphs import CONV_GRAPHS, LayerGraph, maximum_spanning_tree, model_graphs, tree_weight_index

__all__ = ["NORMALIZATIONS", "LayerPersistence", "NPResult", "neural_persistence", "graphs_persistence",
           "layer_persistence", "check_p"]

NORMALIZATIONS = ("global", "layer")


@dataclass
class LayerPersistence:
    """Neural persistence of one layer.

    Attributes
    ----------
    name, kind : str
        Module name and ``'linear'`` / ``'conv'``.
    n_in, n_out : int
        Vertices on each side of the layer graph (units or channels).
    np : float
        ``NP_p`` of the layer.
    np_normalized : float
        ``NP_p / (n_in + n_out - 1)^(1/p)``, in [0, 1].
    diagram : ndarray of shape (n_pairs, 2)
        Points ``(1, w')``, in filtration order (decreasing ``w'``).
    critical_edges : ndarray of int64, shape (n_pairs, 2)
        ``(input unit, output unit)`` of the maximum-spanning-tree edge behind each point.
    weight_index : ndarray of int64, shape (n_pairs,)
        Flat index into the module's ``weight`` of that edge's weight.
    edge_ids : ndarray of int64, shape (n_pairs,)
        Position of that edge in the layer graph's edge list.
    """

    name: str
    kind: str
    n_in: int
    n_out: int
    np: float
    np_normalized: float
    diagram: np.ndarray = field(repr=False)
    critical_edges: np.ndarray = field(repr=False)
    weight_index: np.ndarray = field(repr=False)
    edge_ids: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass
class NPResult:
    """Neural persistence of a whole network.

    Attributes
    ----------
    layers : list of LayerPersistence
    p : float
    normalization : {'global', 'layer'}
    conv : str
        How convolutions became graphs (see :mod:`topodata.weights.graphs`).
    total : float
        Sum of the layers' ``NP_p``.
    mean_normalized : float
        Mean of the layers' normalised NP: the network-level value of Rieck et al.
    """

    layers: list[LayerPersistence]
    p: float
    normalization: str
    conv: str

    @property
    def total(self) -> float:
        return float(sum(layer.np for layer in self.layers))

    @property
    def mean_normalized(self) -> float:
        return float(np.mean([layer.np_normalized for layer in self.layers]))

    def to_dict(self, *, critical_edges: bool = False) -> dict[str, Any]:
        """JSON-ready summary; ``critical_edges=True`` adds each layer's tree edges."""
        layers = []
        for layer in self.layers:
            d = {"name": layer.name, "kind": layer.kind, "n_in": layer.n_in, "n_out": layer.n_out,
                 "np": layer.np, "np_normalized": layer.np_normalized,
                 "n_critical_edges": int(len(layer.weight_index))}
            if critical_edges:
                d["critical_edges"] = layer.critical_edges.tolist()
            layers.append(d)
        return {"p": self.p, "normalization": self.normalization, "conv": self.conv,
                "total": self.total, "mean_normalized": self.mean_normalized, "layers": layers}

    def table(self) -> str:
        """Plain-text table, one row per layer plus the network summary."""
        w = max(8, *(len(layer.name) for layer in self.layers))
        rows = [f"{'layer':<{w}}  {'kind':<6} {'n_in':>6} {'n_out':>6} {'NP_p':>10} {'NP_norm':>8}"]
        for layer in self.layers:
            rows.append(f"{layer.name:<{w}}  {layer.kind:<6} {layer.n_in:>6} {layer.n_out:>6} "
                        f"{layer.np:>10.4f} {layer.np_normalized:>8.4f}")
        rows.append(f"{'total':<{w}}  {'':<6} {'':>6} {'':>6} {self.total:>10.4f} "
                    f"{self.mean_normalized:>8.4f}  (p={self.p:g}, {self.normalization} "
                    f"normalisation, conv={self.conv}; last column: mean)")
        return "\n".join(rows)


def check_p(p: Any) -> float:
    """``p`` of the p-norm: a real number >= 1 (``inf`` allowed)."""
    return V.check_exponent(p, "p")


def _p_norm(x: np.ndarray, p: float) -> float:
    return float(np.linalg.norm(x, ord=p)) if x.size else 0.0


def layer_persistence(graph: LayerGraph, *, p: float = 2.0, scale: float | None = None) -> LayerPersistence:
    """Neural persistence of one layer graph.

    Parameters
    ----------
    graph : LayerGraph
        From :func:`topodata.weights.graphs.layer_graph`.
    p : float, default=2
        Exponent of the p-norm (``inf`` = largest persistence).
    scale : float or None, default=None
        The ``max|w|`` to divide by; ``None`` = this layer's own maximum (per-layer
        normalisation). :func:`neural_persistence` passes the network maximum for ``'global'``.
    """
    p = check_p(p)
    scale = float(graph.w.max(initial=0.0)) if scale is None else float(scale)
    w_norm = graph.w / scale if scale > 0 else np.zeros_like(graph.w)
    pairs, ids = maximum_spanning_tree(graph, w_norm)
    value = _p_norm(pairs[:, 0] - pairs[:, 1], p)
    bound = (graph.n_vertices - 1) ** (0.0 if np.isinf(p) else 1.0 / p)
    edges = np.stack([graph.src[ids], graph.dst[ids]], axis=1)
    return LayerPersistence(graph.name, graph.kind, graph.n_in, graph.n_out, value, value / bound,
                            pairs, edges, tree_weight_index(graph, ids), ids)


def neural_persistence(
    model: Any,
    *,
    p: float = 2.0,
    normalization: str = "global",
    conv: str = "aggregate",
    input_shape: tuple[int, ...] | None = None,
) -> NPResult:
    """Neural persistence of every ``nn.Linear`` / ``nn.Conv*`` layer of a model.

    Parameters
    ----------
    model : torch.nn.Module
        Trained (or pruned with ``torch.nn.utils.prune``; pruned weights count as 0) network.
    p : float, default=2
        Exponent of ``NP_p = (sum_{(1, w')} |1 - w'|^p)^(1/p)``; ``inf`` allowed.
    normalization : {'global', 'layer'}, default='global'
        Divide ``|w|`` by the largest ``|w|`` of the whole network (Rieck et al.; layers are
        comparable) or of each layer (only each layer's weight distribution counts).
    conv : {'aggregate', 'aggregate-l2', 'toeplitz'}, default='aggregate'
        Graph of a convolution: in-channel x out-channel with each kernel reduced to its largest
        ``|w|`` (default), to its L2 norm, or the full unrolled graph (small inputs only). See
        :mod:`topodata.weights.graphs` for why max is the default.
    input_shape : tuple of int, optional
        ``(C, H, W)`` of one input; needed only for ``conv='toeplitz'``.

    Returns
    -------
    NPResult
        Per-layer NP, normalised NP, diagram and critical (spanning-tree) edges, plus the network
        total and mean normalised NP.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Module`` or ``p`` not a number.
    TopodataInputError
        If an option is unknown, ``p < 1``, the model has no linear/conv layer, has grouped
        convolutions, or a Toeplitz graph would be too large.

    Examples
    --------
    >>> import torch
    >>> layer = torch.nn.Linear(2, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[1.0, 0.5], [0.25, 0.0]]))
    >>> res = neural_persistence(torch.nn.Sequential(layer))
    >>> round(res.layers[0].np ** 2, 4)  # tree weights 1, 0.5, 0.25 -> 0 + 0.25 + 0.5625
    0.8125
    """
    p = check_p(p)  # options first, before the graphs are built
    V.check_options(normalization, "normalization", NORMALIZATIONS)
    V.check_options(conv, "conv", CONV_GRAPHS)
    graphs = model_graphs(model, conv=conv, input_shape=input_shape)
    return graphs_persistence(graphs, p=p, normalization=normalization, conv=conv)


def graphs_persistence(
    graphs: list[LayerGraph], *, p: float = 2.0, normalization: str = "global", conv: str = "aggregate"
) -> NPResult:
    """:func:`neural_persistence` of layer graphs already built (one tree per graph).

    ``conv`` only labels the result. The IMP driver uses it to get NP and the tree overlap of one
    weight state from one set of graphs and trees.
    """
    p = check_p(p)
    V.check_options(normalization, "normalization", NORMALIZATIONS)
    if not graphs:
        raise V.TopodataInputError("graphs is empty; pass the LayerGraph of every analysed layer")
    scale = max(float(g.w.max(initial=0.0)) for g in graphs) if normalization == "global" else None
    layers = [layer_persistence(g, p=p, scale=scale) for g in graphs]
    return NPResult(layers, p, normalization, conv)
