"""Turn a job's dataset spec into tensors: train / val / test splits, the transfer set,
normalisation statistics and a fingerprint of the inputs the teacher labels."""

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from worker.data.registry import RawDataset, load_dataset


class DatasetMismatch(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class PreparedData:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    # Unlabelled examples only the teacher labels (Hinton's transfer set); may be empty.
    x_transfer: torch.Tensor
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: list[str]
    mean: torch.Tensor
    std: torch.Tensor
    test_split: str
    # Transfer examples removed because they are also validation or test examples.
    transfer_dropped: int = 0

    @property
    def x_distill(self) -> torch.Tensor:
        """What the student sees during distillation: labelled train, then transfer."""
        if len(self.x_transfer) == 0:
            return self.x_train
        return torch.cat([self.x_train, self.x_transfer])

    @property
    def y_distill(self) -> torch.Tensor:
        """Labels for x_distill; -1 marks transfer examples (KD term only)."""
        unlabelled = torch.full((len(self.x_transfer),), -1, dtype=torch.long)
        return torch.cat([self.y_train, unlabelled])

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.x_distill.numpy()).tobytes())
        return digest.hexdigest()


def prepare(dataset: dict[str, Any], seed: int) -> PreparedData:
    raw = load_dataset(dataset["name"], dataset["options"])
    input_shape = tuple(raw.x.shape[1:])
    x = torch.from_numpy(np.ascontiguousarray(raw.x, dtype=np.float32))
    y = torch.from_numpy(raw.y.astype(np.int64))
    _check_labels(raw)

    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=generator)
    n_val = max(1, round(len(x) * dataset["val_fraction"]))
    if len(x) - n_val < 1:
        raise DatasetMismatch("dataset.val_fraction", "no training examples left after the split")
    val, train = order[:n_val], order[n_val:]

    x_transfer = torch.empty((0, *input_shape))
    if dataset.get("transfer"):
        transfer = load_dataset(dataset["transfer"]["name"], dataset["transfer"]["options"])
        x_transfer = torch.from_numpy(
            np.ascontiguousarray(np.concatenate([transfer.x, transfer.x_test]), dtype=np.float32)
        )
        if tuple(x_transfer.shape[1:]) != input_shape:
            raise DatasetMismatch(
                "dataset.transfer",
                f"transfer inputs have shape {tuple(x_transfer.shape[1:])}, "
                f"the dataset's have {input_shape}",
            )

    x_test = torch.from_numpy(np.ascontiguousarray(raw.x_test, dtype=np.float32))
    # A transfer set drawn from the same source may contain the very examples the student is
    # validated and tested on; the teacher's logits for those would leak into the scores.
    x_transfer, leaked = _without_rows(x_transfer, torch.cat([x_test, x[val]]))
    mean, std = _normalisation(x[train])
    return PreparedData(
        x_train=x[train],
        y_train=y[train],
        x_val=x[val],
        y_val=y[val],
        x_test=x_test,
        y_test=torch.from_numpy(raw.y_test.astype(np.int64)),
        x_transfer=x_transfer,
        input_shape=input_shape,
        num_classes=raw.num_classes,
        class_names=raw.class_names,
        mean=mean,
        std=std,
        test_split=raw.test_split,
        transfer_dropped=leaked,
    )


def _without_rows(x: torch.Tensor, held_out: torch.Tensor) -> tuple[torch.Tensor, int]:
    """`x` minus the rows that also appear (byte for byte) in `held_out`, and how many went."""
    if len(x) == 0:
        return x, 0
    held = {row.tobytes() for row in held_out.numpy().reshape(len(held_out), -1)}
    keep = [row.tobytes() not in held for row in x.numpy().reshape(len(x), -1)]
    mask = torch.tensor(keep, dtype=torch.bool)
    return x[mask], int((~mask).sum())


def _check_labels(raw: RawDataset) -> None:
    for name, labels in (("train", raw.y), ("test", raw.y_test)):
        if len(labels) and (labels.min() < 0 or labels.max() >= raw.num_classes):
            raise DatasetMismatch("dataset", f"{name} labels outside 0..{raw.num_classes - 1}")


def _normalisation(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel statistics for images (C, H, W); one scalar for everything else."""
    if x.dim() == 4:
        mean = x.mean(dim=(0, 2, 3)).view(-1, 1, 1)
        std = x.std(dim=(0, 2, 3)).view(-1, 1, 1)
    else:
        mean, std = x.mean(), x.std()
    return mean, std.clamp_min(1e-6)
