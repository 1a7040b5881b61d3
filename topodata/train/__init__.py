"""Training and evaluation: the loop used for proxy training and for training on kept subsets.

>>> from topodata.train import fit, evaluate, extract_features, resolve_device
"""

from .augment import augment_batch, resolve_augment
from .loop import evaluate, extract_features, fit, resolve_device

__all__ = ["fit", "evaluate", "extract_features", "resolve_device", "augment_batch", "resolve_augment"]
