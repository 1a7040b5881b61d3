"""Networks and how to train them: the model zoo, the training loop, augmentation, training dynamics.

The layer below every stage that trains a network: ``embed`` (proxy training and feature
extraction), ``train`` (training on a kept subset), ``weights`` (IMP / T-IMP) and the dynamics
scores all build on it, and it imports none of them. Names are loaded on first use, so that
``topodata.nn.dynamics`` (numpy only) does not pull in torch.

>>> from topodata.nn import build_model, fit, evaluate, extract_features
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    **dict.fromkeys(("MODELS", "FeatureModel", "build_model", "init_weights"), "models"),
    **dict.fromkeys(("fit", "evaluate", "extract_features", "resolve_device"), "loop"),
    **dict.fromkeys(("augment_batch", "resolve_augment"), "augment"),
    **dict.fromkeys(("TrainingDynamics", "DynamicsRecorder", "dynamics_from_features"), "dynamics"),
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
