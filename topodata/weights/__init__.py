"""The weight side: neural persistence, critical compression, IMP and T-IMP (docs/weights.md).

- :mod:`.graphs`: a layer as a weighted bipartite graph (how convolutions are read) and its
  maximum spanning tree, from the persistence core :mod:`topodata.topology`;
- :mod:`.persistence`: neural persistence per layer and per network (:func:`neural_persistence`);
- :mod:`.compression`: the critical compression ratio ``eta_tau`` from shapes, spanning-tree
  retention of masks, and the Balwani–Krzyston overlap bound;
- :mod:`.pruning`: IMP with weight rewinding and T-IMP through ``torch.nn.utils.prune``;
- :mod:`.checkpoint`: (pruned) model checkpoints for the ``np`` and ``timp`` commands.

>>> from topodata.weights import neural_persistence, critical_compression, iterative_pruning
"""

from .checkpoint import checkpoint_bytes, load_checkpoint
from .compression import (
    ARCHITECTURES,
    READINGS,
    CompressionTable,
    LayerShape,
    architecture_shapes,
    critical_compression,
    critical_ratio_conv,
    critical_ratio_dense,
    critical_ratio_recurrent,
    model_shapes,
    spanning_tree_retention,
    top_weight_tree_overlap,
    tree_overlap_lower_bound,
)
from .graphs import (
    CONV_GRAPHS,
    LayerGraph,
    layer_graph,
    maximum_spanning_tree,
    model_graphs,
    model_trees,
    prunable_layers,
    tree_overlap,
    tree_weight_index,
)
from .persistence import LayerPersistence, NPResult, graphs_persistence, layer_persistence, neural_persistence
from .pruning import (
    PruningRun,
    WeightSnapshot,
    apply_masks,
    iterative_pruning,
    next_masks,
    prune_step,
    pruning_masks,
    rewind,
    spanning_tree_weights,
    sparsity_schedule,
)

__all__ = [
    "neural_persistence", "graphs_persistence", "NPResult", "LayerPersistence", "layer_persistence",
    "LayerGraph", "layer_graph", "model_graphs", "maximum_spanning_tree", "prunable_layers", "CONV_GRAPHS",
    "tree_weight_index", "model_trees", "tree_overlap",
    "critical_compression", "CompressionTable", "LayerShape", "ARCHITECTURES", "READINGS", "architecture_shapes",
    "model_shapes", "critical_ratio_dense", "critical_ratio_conv", "critical_ratio_recurrent",
    "spanning_tree_retention", "top_weight_tree_overlap", "tree_overlap_lower_bound",
    "iterative_pruning", "PruningRun", "sparsity_schedule", "pruning_masks", "spanning_tree_weights",
    "next_masks", "apply_masks", "prune_step", "WeightSnapshot", "rewind",
    "checkpoint_bytes", "load_checkpoint",
]
