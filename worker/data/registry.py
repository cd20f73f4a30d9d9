"""Dataset registry: a loader turns a dataset request into train and test arrays."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.models import DEFAULT_TENANT
from app.settings import Settings, get_settings
from worker.data.rows import Rows
from worker.data.tokens import Vocabulary
from worker.registry import Registry


class DatasetMismatch(ValueError):
    """The dataset cannot serve the job; `param` is the spec field to blame."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class DatasetRequest:
    """What a loader is asked for: the spec's name ("digits", "file:<id>"), its resolved
    options, the settings (database, store), the spec field that named it, the job's tenant
    (whose files it may read) and whether it is a transfer set (all of its rows, no test
    split)."""

    name: str
    options: dict[str, Any]
    settings: Settings
    param: str = "dataset.name"
    tenant: str = DEFAULT_TENANT
    transfer: bool = False
    # A language-model corpus is cut into these tokens (the teacher's), not bytes.
    vocabulary: Vocabulary | None = None


@dataclass
class RawDataset:
    """Arrays in the dataset's own raw format (what exported models take as input).

    `x` / `x_test` are numpy arrays (builtins) or rows read from disk (uploaded files).
    """

    x: "np.ndarray | Rows"
    y: np.ndarray | None  # None: an unlabelled set (a transfer set only)
    x_test: "np.ndarray | Rows"
    y_test: np.ndarray | None
    num_classes: int | None
    class_names: list[str] | None
    # How the test split was made, so a user can rebuild it outside the service.
    test_split: str
    # Where the rows come from, for precomputed teacher logits: every input of the source in
    # its own order (a transfer set is read in this order); the row of `all_x` each row of `x`
    # is; and the row of `all_x` each row of `x_test` is (None: x_test is a separate array).
    all_x: "Rows | None" = None
    x_rows: np.ndarray | None = None
    test_rows: np.ndarray | None = None
    # The uploaded file behind the rows, if any: {"id", "sha256"}.
    file: dict[str, Any] | None = field(default=None)
    # The dtype of the raw inputs ("float32", or "uint8" for images and text).
    raw_dtype: str = "float32"
    # What the inputs are: "values" (numbers a model normalises) or "text" (UTF-8 bytes padded
    # with byte 0, app/files/text_examples.py: a model reads them as token ids).
    modality: str = "values"
    # The tokens a language-model corpus was cut into (None: bytes, or not text).
    vocabulary: Vocabulary | None = None

    @property
    def source_rows(self) -> int:
        """Rows of the source's own x (what a logits file has one row per)."""
        return len(self.all_x) if self.all_x is not None else len(self.x)


DatasetLoader = Callable[[DatasetRequest], RawDataset]

DATASETS: Registry[DatasetLoader] = Registry("dataset")


def load_dataset(
    name: str,
    options: dict[str, Any],
    settings: Settings | None = None,
    param: str = "dataset.name",
    *,
    tenant: str = DEFAULT_TENANT,
    transfer: bool = False,
    vocabulary: Vocabulary | None = None,
) -> RawDataset:
    from distillery.types.catalog.datasets import dataset_kind

    request = DatasetRequest(
        name, options, settings or get_settings(), param, tenant, transfer, vocabulary
    )
    return DATASETS.get(dataset_kind(name))(request)
