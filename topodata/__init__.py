"""topodata: topology-aware data pruning and neural persistence.

The top-level names are imported lazily so that ``import topodata`` stays light (no torch, UMAP
or numba until a stage that needs them runs).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "select": "topodata.select:select",
    "SelectionResult": "topodata.select:SelectionResult",
    "save_selection": "topodata.select:save_selection",
    "to_subset": "topodata.select:to_subset",
    "available_methods": "topodata.scores:available_methods",
    "load_dataset": "topodata.data:load_dataset",
    "embed": "topodata.embed:embed",
    "knn": "topodata.neighbors:knn",
    "global_manifold": "topodata.manifold:global_manifold",
    "neural_persistence": "topodata.weights:neural_persistence",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name].split(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'topodata' has no attribute {name!r}")
