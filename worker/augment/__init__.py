"""Data augmentation (`dataset.augment`): one file per kind, registered by name."""

from worker.augment.registry import (
    AUGMENTATIONS,
    Augmentation,
    ViewKey,
    Views,
    build_augmentation,
)
from worker.plugins import import_all

import_all(__name__)

__all__ = ["AUGMENTATIONS", "Augmentation", "ViewKey", "Views", "build_augmentation"]
