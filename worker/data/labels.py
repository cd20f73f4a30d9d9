"""What a learning task's labels are (it declares them: worker/learning_tasks): their dtype,
what marks an example with no label (a transfer example the teacher alone labels), and how a
dataset's labels are checked. Classification and byte-level language models both learn class
ids (a class, or the next byte, per example or per position)."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from worker.data.registry import DatasetMismatch, RawDataset


@dataclass(frozen=True)
class Labels:
    dtype: torch.dtype
    # The label of an example that has none (the KD term only; worker/kd/losses.UNLABELLED).
    unlabelled: float
    # Raises DatasetMismatch when the dataset's labels cannot be the task's.
    check: Callable[[RawDataset], None]

    def tensor(self, labels: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(labels).to(self.dtype)


def _class_ids_in_range(raw: RawDataset) -> None:
    assert raw.num_classes is not None
    for name, labels in (("train", raw.y), ("test", raw.y_test)):
        if labels is None or len(labels) == 0:
            continue
        if labels.min() < 0 or labels.max() >= raw.num_classes:
            raise DatasetMismatch("dataset", f"{name} labels outside 0..{raw.num_classes - 1}")


# A class id per example (or per position), 0..num_classes - 1; -1: no label.
CLASS_IDS = Labels(dtype=torch.int64, unlabelled=-1, check=_class_ids_in_range)
