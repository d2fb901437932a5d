"""Dataset sources (digits, fashion_mnist, npz, image_folder, factory) and in-memory splits."""

from __future__ import annotations

from ._augment import Augment
from ._idx import read_idx
from ._sources import FASHION_CLASSES, load
from ._splits import Splits, TensorSplit, channels_last, default_layout, make_splits

__all__ = [
    "FASHION_CLASSES",
    "Augment",
    "Splits",
    "TensorSplit",
    "channels_last",
    "default_layout",
    "load",
    "make_splits",
    "read_idx",
]
