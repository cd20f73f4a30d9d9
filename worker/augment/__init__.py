"""Data augmentation (`dataset.augment`): one file per kind, registered by name."""

from worker.augment import image, signal, tabular  # noqa: F401  (registers the kinds)
from worker.augment.registry import (
    AUGMENTATIONS,
    Augmentation,
    ViewKey,
    Views,
    build_augmentation,
)

__all__ = ["AUGMENTATIONS", "Augmentation", "ViewKey", "Views", "build_augmentation"]
