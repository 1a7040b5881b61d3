"""The persistence core shared by the data side (TopoPrune) and the weight side (neural persistence).

- H0 from spanning trees: :func:`mst_dense` (batched Prim, numpy or torch, GPU-ready),
  :func:`h0_point_cloud` (Rips H0 + critical edges), :func:`spanning_tree_pairs` (edge-list
  graphs, ``maximum=True`` for network layers);
- H1 from ripser with the birth and death edge of every pair: :func:`h1_point_cloud`,
  :func:`h1_point_cloud_batch`;
- differentiable losses of point coordinates: :func:`h0_total_persistence`,
  :func:`h1_total_persistence`;
- cheap summaries: :func:`diagram_summaries`.

See docs/algorithms.md#topoprune-step-by-step and docs/weights.md#persistence-core.
"""

from __future__ import annotations

from .losses import h0_total_persistence, h1_total_persistence
from .rips_h1 import H1Diagram, h1_point_cloud, h1_point_cloud_batch
from .spanning_tree import H0Diagram, h0_point_cloud, mst_dense, spanning_tree_pairs
from .summaries import diagram_summaries

__all__ = [
    "mst_dense",
    "h0_point_cloud",
    "spanning_tree_pairs",
    "h1_point_cloud",
    "h1_point_cloud_batch",
    "h0_total_persistence",
    "h1_total_persistence",
    "diagram_summaries",
    "H0Diagram",
    "H1Diagram",
]
