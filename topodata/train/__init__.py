"""Training on a kept subset (:func:`train_on_subset`), the judge of a selection.

The training loop itself lives in :mod:`topodata.nn`; ``fit``, ``evaluate``, ``extract_features``
and ``resolve_device`` are re-exported here. Names are loaded on first use, so that importing
:mod:`topodata.train.subset` does not pull in torch.

>>> from topodata.train import fit, evaluate, extract_features, resolve_device
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    **dict.fromkeys(("fit", "evaluate", "extract_features", "resolve_device", "augment_batch",
                     "resolve_augment"), "topodata.nn"),
    **dict.fromkeys(("train_on_subset", "probe_on_subset"), "topodata.train.subset"),
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
