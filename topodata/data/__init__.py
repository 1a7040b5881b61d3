"""Dataset sources and the split/label contract (docs/design.md#datasets).

Every source returns a :class:`Dataset`: float32 ``x`` (images ``(N, C, H, W)`` in [0, 1]),
int64 ``y``, a fixed train/test split and a fixed sample order, so that indices written by
``topodata select`` mean the same samples on every machine.

>>> from topodata.data import load_dataset
>>> load_dataset("digits").input_shape
(1, 8, 8)
"""

from .dataset import AUGMENTATIONS, Dataset, images_to_float
from .sources import DATASET_SPECS, load_dataset

__all__ = ["Dataset", "load_dataset", "DATASET_SPECS", "AUGMENTATIONS", "images_to_float"]
