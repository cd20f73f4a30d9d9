"""The dataset registry: builtin sets and uploaded files registered under the catalog's names,
and preparation."""

from worker.data import builtin, text, uploaded  # noqa: F401  (registers the datasets)
from worker.data.prepare import Examples, PreparedData, prepare
from worker.data.registry import DATASETS, DatasetMismatch, RawDataset, load_dataset

__all__ = [
    "DATASETS",
    "DatasetMismatch",
    "Examples",
    "PreparedData",
    "RawDataset",
    "load_dataset",
    "prepare",
]
