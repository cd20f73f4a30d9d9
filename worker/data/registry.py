"""Dataset registry: a loader turns resolved options into train and test arrays."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from worker.registry import Registry


@dataclass
class RawDataset:
    """Arrays in the dataset's own raw format (what exported models take as input)."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: list[str]
    # How the test split was made, so a user can rebuild it outside the service.
    test_split: str


DatasetLoader = Callable[[dict[str, Any]], RawDataset]

DATASETS: Registry[DatasetLoader] = Registry("dataset")


def load_dataset(name: str, options: dict[str, Any]) -> RawDataset:
    return DATASETS.get(name)(options)
