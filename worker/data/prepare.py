"""Turn a job's dataset spec into splits: train / val / test, the transfer set, normalisation
statistics and a fingerprint of the inputs the teacher labels.

A dataset whose inputs (as float32) fit in `settings.worker_memory_bytes` is read into memory
once, as today's tensors; a larger one stays on disk and every pass over it (statistics,
fingerprint, deduplication, training batches, predictions) reads it a chunk or a batch at a time.
"""

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch

from app.models import DEFAULT_TENANT
from app.settings import Settings, get_settings
from worker.data.labels import CLASS_IDS, Labels
from worker.data.registry import DatasetMismatch, RawDataset, load_dataset
from worker.data.rows import Concat, Rows, Subset, as_rows, chunk_rows, iter_chunks, row_digests
from worker.data.tokens import Vocabulary
from worker.precision import pinned

__all__ = ["DatasetMismatch", "Examples", "PreparedData", "prepare"]


class Examples:
    """The inputs of one split, handed to models as float32.

    In memory: one float32 tensor, copied to the device once for training batches. On disk:
    each batch gathers its rows from the .npy files and is converted on the device.
    """

    def __init__(self, rows: Rows, in_memory: bool, tensor: torch.Tensor | None = None) -> None:
        self.rows = rows
        self.tensor = tensor
        if in_memory and tensor is None:
            self.tensor = _read_all(rows)
        self._on_device: tuple[torch.device, torch.Tensor] | None = None

    @property
    def in_memory(self) -> bool:
        return self.tensor is not None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.rows.shape[1:])

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, index: torch.Tensor, device: torch.device) -> torch.Tensor:
        """The examples at `index` (a CPU tensor), float32 on `device`."""
        if self.tensor is not None:
            if self._on_device is None or self._on_device[0] != device:
                self._on_device = (device, self.tensor.to(device))
            return self._on_device[1][index]
        raw = torch.from_numpy(self.rows.take(index.cpu().numpy()))
        return pinned(raw, device).float()

    def release(self) -> None:
        """Drop the device copy (the end of a stage)."""
        self._on_device = None

    def chunks(self, size: int | None = None) -> Iterator[torch.Tensor]:
        """All examples in order, float32 on the CPU, `size` at a time."""
        if size is None:
            size = chunk_rows(math.prod(self.input_shape) * 4)
        if self.tensor is not None:
            for start in range(0, len(self.tensor), size):
                yield self.tensor[start : start + size]
            return
        for chunk in iter_chunks(self.rows, size):
            yield torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))

    def part(self, rows: slice) -> "Examples":
        """Examples `rows` (a contiguous range: a shard of the split), in order."""
        start, stop, _ = rows.indices(len(self))
        index = np.arange(start, stop)
        if self.tensor is not None:
            return Examples(Subset(self.rows, index), True, self.tensor[start:stop])
        return Examples(Subset(self.rows, index), False)

    def head(self, n: int) -> torch.Tensor:
        """The first n examples, float32 on the CPU."""
        if self.tensor is not None:
            return self.tensor[:n]
        rows = self.rows.take(np.arange(min(n, len(self))))
        return torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))

    @staticmethod
    def concat(first: "Examples", second: "Examples") -> "Examples":
        rows = Concat([first.rows, second.rows])
        if first.tensor is not None and second.tensor is not None:
            return Examples(rows, True, torch.cat([first.tensor, second.tensor]))
        return Examples(rows, False)


def _read_all(rows: Rows) -> torch.Tensor:
    out = np.empty(rows.shape, dtype=np.float32)
    start = 0
    for chunk in iter_chunks(rows):
        out[start : start + len(chunk)] = chunk
        start += len(chunk)
    return torch.from_numpy(out)


@dataclass
class PreparedData:
    train: Examples
    y_train: torch.Tensor
    val: Examples
    y_val: torch.Tensor
    test: Examples
    y_test: torch.Tensor
    # Unlabelled examples only the teacher labels (Hinton's transfer set); may be empty.
    transfer: Examples
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: list[str]
    mean: torch.Tensor
    std: torch.Tensor
    test_split: str
    fingerprint_value: str
    # Rows of a precomputed logits file (the dataset's x rows, then the transfer set's rows):
    # the row of each distill example, the rows of the dataset's x and of the transfer set
    # (the file has both), and the row of each test example when the test split comes from x
    # (None: it is the file's own x_test).
    logit_rows: np.ndarray
    logit_dataset_rows: int
    logit_transfer_rows: int
    test_logit_rows: np.ndarray | None
    raw_dtype: str = "float32"
    # What the labels are (the task's: dtype, the unlabelled mark).
    labels: Labels = CLASS_IDS
    # "values" or "text" (RawDataset.modality).
    modality: str = "values"
    # Transfer examples removed because they are also validation or test examples.
    transfer_dropped: int = 0
    # The tokens a language-model corpus was cut into (None: bytes, or not text).
    vocabulary: Vocabulary | None = None

    def __post_init__(self) -> None:
        # Built once: train then transfer (a copy of both when in memory).
        self.distill = (
            Examples.concat(self.train, self.transfer) if len(self.transfer) else self.train
        )

    @property
    def logit_source_rows(self) -> int:
        return self.logit_dataset_rows + self.logit_transfer_rows

    @property
    def in_memory(self) -> bool:
        return self.train.in_memory

    @cached_property
    def y_distill(self) -> torch.Tensor:
        """Labels for `distill`: labelled train, then transfer, marked unlabelled (the KD term
        only: -1 for class ids). Built on first use, then the same tensor every time."""
        shape = (len(self.transfer), *self.y_train.shape[1:])  # a label per position, or one
        unlabelled = torch.full(shape, self.labels.unlabelled, dtype=self.labels.dtype)
        return torch.cat([self.y_train, unlabelled])

    def fingerprint(self) -> str:
        """Identifies the distill inputs: their bytes (builtins), or for uploaded files the
        file's sha256 and id and the rows taken from it."""
        return self.fingerprint_value


def transfer_rows(raw: RawDataset) -> Rows:
    """Every input of a transfer set, in its own order: x then x_test."""
    if raw.all_x is None:
        return Concat([as_rows(raw.x), as_rows(raw.x_test)])
    if raw.test_rows is None:
        return Concat([raw.all_x, as_rows(raw.x_test)])
    return raw.all_x  # the test rows are rows of x


def prepare(
    dataset: dict[str, Any],
    seed: int,
    settings: Settings | None = None,
    tenant: str = DEFAULT_TENANT,
    *,
    labels: Labels = CLASS_IDS,
    vocabulary: Vocabulary | None = None,
) -> PreparedData:
    """`tenant`: the job's, whose uploaded files alone it may read; `labels`: what the job's
    task learns (its dtype, the unlabelled mark, the check of the dataset's labels);
    `vocabulary`: the teacher's tokens, which a language-model corpus is cut into."""
    settings = settings or get_settings()
    raw = load_dataset(
        dataset["name"],
        dataset["options"],
        settings,
        "dataset.name",
        tenant=tenant,
        vocabulary=vocabulary,
    )
    if raw.y is None or raw.y_test is None or not raw.num_classes:
        raise DatasetMismatch(
            "dataset.name",
            f"{dataset['name']} has no labels: an unlabelled set can only be a dataset.transfer",
        )
    x, x_test = as_rows(raw.x), as_rows(raw.x_test)
    input_shape = tuple(x.shape[1:])
    labels.check(raw)
    y = labels.tensor(raw.y)

    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=generator).numpy()
    n_val = max(1, round(len(x) * dataset["val_fraction"]))
    if len(x) - n_val < 1:
        raise DatasetMismatch("dataset.val_fraction", "no training examples left after the split")
    val, train = order[:n_val], order[n_val:]

    transfer: Rows = Subset(x, np.zeros(0, dtype=np.int64))
    transfer_source_rows = 0
    if dataset.get("transfer"):
        spec = dataset["transfer"]
        transfer_raw = load_dataset(
            spec["name"],
            spec["options"],
            settings,
            "dataset.transfer.name",
            tenant=tenant,
            transfer=True,
        )
        if transfer_raw.modality != raw.modality:
            raise DatasetMismatch(
                "dataset.transfer",
                f"the transfer set is {transfer_raw.modality}, the dataset {raw.modality}",
            )
        transfer = transfer_rows(transfer_raw)
        transfer_source_rows = len(transfer)
        if tuple(transfer.shape[1:]) != input_shape:
            raise DatasetMismatch(
                "dataset.transfer",
                f"transfer inputs have shape {tuple(transfer.shape[1:])}, "
                f"the dataset's have {input_shape}",
            )

    row_floats = math.prod(input_shape)
    held_bytes = 4 * row_floats * (len(x) + len(x_test) + len(transfer))
    in_memory = held_bytes <= settings.worker_memory_bytes

    # A transfer set drawn from the same source may contain the very examples the student is
    # validated and tested on; the teacher's logits for those would leak into the scores.
    kept = np.arange(len(transfer))
    if len(transfer):
        held = set(row_digests(Concat([x_test, Subset(x, val)])))
        kept = np.array(
            [i for i, d in enumerate(row_digests(transfer)) if d not in held], dtype=np.int64
        )
    leaked = len(transfer) - len(kept)
    if leaked:
        transfer = Subset(transfer, kept)

    train_rows = Subset(x, train)
    digest = hashlib.sha256()
    Concat([train_rows, transfer]).fingerprint(digest)
    x_rows = raw.x_rows if raw.x_rows is not None else np.arange(len(x))
    train_examples = Examples(train_rows, in_memory)
    mean, std = _normalisation(train_examples)
    return PreparedData(
        labels=labels,
        train=train_examples,
        y_train=y[train],
        val=Examples(Subset(x, val), in_memory),
        y_val=y[val],
        test=Examples(x_test, in_memory),
        y_test=labels.tensor(raw.y_test),
        transfer=Examples(transfer, in_memory),
        input_shape=input_shape,
        num_classes=raw.num_classes,
        class_names=(
            raw.class_names
            if raw.class_names is not None
            else [str(c) for c in range(raw.num_classes)]
        ),
        mean=mean,
        std=std,
        test_split=raw.test_split,
        fingerprint_value=digest.hexdigest(),
        logit_rows=np.concatenate([x_rows[train], raw.source_rows + kept]).astype(np.int64),
        logit_dataset_rows=raw.source_rows,
        logit_transfer_rows=transfer_source_rows,
        test_logit_rows=raw.test_rows,
        raw_dtype=raw.raw_dtype,
        modality=raw.modality,
        transfer_dropped=leaked,
        vocabulary=raw.vocabulary,
    )


def _normalisation(x: Examples) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel statistics for images (C, H, W); one scalar for everything else.

    Streams over the examples with float64 accumulators (Chan et al.'s pairwise merge of
    count, mean and sum of squared deviations); std is the unbiased sample std."""
    per_channel = len(x.input_shape) == 3
    count = 0
    mean: np.ndarray | float = 0.0
    m2: np.ndarray | float = 0.0
    for chunk in x.chunks():
        a = chunk.numpy().astype(np.float64)
        # One row of values per channel (images), or one row for everything.
        a = a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1) if per_channel else a.reshape(1, -1)
        n = a.shape[1]
        if n == 0:
            continue
        chunk_mean = a.mean(axis=1)
        chunk_m2 = ((a - chunk_mean[:, None]) ** 2).sum(axis=1)
        delta = chunk_mean - mean
        total = count + n
        mean = mean + delta * n / total
        m2 = m2 + chunk_m2 + delta**2 * count * n / total
        count = total
    var = np.asarray(m2) / max(count - 1, 1)
    mean_t = torch.as_tensor(np.asarray(mean), dtype=torch.float32)
    std_t = torch.as_tensor(np.sqrt(var), dtype=torch.float32).clamp_min(1e-6)
    if per_channel:
        return mean_t.view(-1, 1, 1), std_t.view(-1, 1, 1)
    return mean_t.reshape(()), std_t.reshape(())
