"""topodata: topology-aware data pruning and neural persistence.

The top-level names are imported lazily so that ``import topodata`` stays light (no torch, UMAP
or numba until a stage that needs them runs).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Imported eagerly (numpy only): binding the function *after* the submodule loads keeps
# ``topodata.select`` the function even once ``topodata.select`` the module has been imported.
from .select import SelectionResult, save_selection, select, to_subset  # noqa: E402

_LAZY = {
    "available_methods": "topodata.scores:available_methods",
    "load_dataset": "topodata.data:load_dataset",
    "select_dataset": "topodata.pipeline:select_dataset",
    "embed": "topodata.embed:embed",
    "knn": "topodata.neighbors:knn",
    "global_manifold": "topodata.manifold:global_manifold",
    "neural_persistence": "topodata.weights:neural_persistence",
}

__all__ = ["__version__", "select", "SelectionResult", "save_selection", "to_subset", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name].split(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'topodata' has no attribute {name!r}")
