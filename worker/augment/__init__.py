"""Data augmentation (`dataset.augment`): one file per kind, registered by name."""

from app.plugins import import_all
from worker.augment.registry import (
    AUGMENTATIONS,
    Augmentation,
    ViewKey,
    Views,
    build_augmentation,
)

import_all(__name__)

__all__ = ["AUGMENTATIONS", "Augmentation", "ViewKey", "Views", "build_augmentation"]
