"""The dataset registry: builtin sets registered under the catalog's names, and preparation."""

from worker.data import builtin  # noqa: F401  (registers the datasets)
from worker.data.prepare import PreparedData, prepare
from worker.data.registry import DATASETS, RawDataset, load_dataset

__all__ = ["DATASETS", "PreparedData", "RawDataset", "load_dataset", "prepare"]
