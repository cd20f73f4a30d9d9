"""The dataset registry: builtin sets and uploaded files registered under the catalog's names,
and preparation."""

from app.plugins import import_all
from worker.data.prepare import Examples, PreparedData, prepare
from worker.data.registry import DATASETS, DatasetMismatch, RawDataset, load_dataset

import_all(__name__)

__all__ = [
    "DATASETS",
    "DatasetMismatch",
    "Examples",
    "PreparedData",
    "RawDataset",
    "load_dataset",
    "prepare",
]
