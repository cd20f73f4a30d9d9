"""Datasets (`dataset.name`, `dataset.transfer.name`): the builtin sets and uploaded files
(`file:<id>`), with their options. `worker/data/` loads each under the same name."""

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from distillery.types.catalog.base import BOTH_TASKS, Entry, Params, SpecError, by_name


class DigitsOptions(Params):
    layout: Literal["flat", "image"] = Field(
        default="flat", description="flat: x is (64,); image: x is (1, 8, 8)"
    )


class Mnist1dOptions(Params):
    num_samples: int = Field(default=5000, ge=100, le=1_000_000)
    seed: int = Field(default=42, ge=0, le=2**31 - 1)


class SyntheticOptions(Params):
    shape: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default=[32], min_length=1, max_length=3
    )
    num_classes: int = Field(default=10, ge=2, le=1000)
    num_samples: int = Field(default=2000, ge=10, le=1_000_000)
    noise: float = Field(default=1.0, ge=0.0, le=100.0)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class TextCorpusOptions(Params):
    context: Annotated[int, Field(ge=2, le=8192)] = Field(
        default=128, description="bytes per training window (the model predicts each next byte)"
    )
    max_bytes: Annotated[int, Field(ge=10_000, le=200_000_000)] = Field(
        default=2_000_000, description="bytes of text to read"
    )


class FileOptions(Params):
    """An uploaded dataset takes its options (label column, image size, ...) at upload."""


@dataclass(frozen=True)
class DatasetEntry(Entry):
    params_field: ClassVar[str] = "options"


DATASETS: dict[str, DatasetEntry] = by_name(
    [
        DatasetEntry("digits", "scikit-learn 8x8 handwritten digits, 10 classes.", DigitsOptions),
        DatasetEntry(
            "mnist1d", "MNIST-1D (Greydanus 2020), sequences of 40, 10 classes.", Mnist1dOptions
        ),
        DatasetEntry("synthetic", "Gaussian class clusters of any shape.", SyntheticOptions),
        DatasetEntry(
            "pystdlib",
            "Text: the Python standard library's own source (.py files, no tests), as bytes.",
            TextCorpusOptions,
            tasks=("language_model",),
        ),
        DatasetEntry(
            "file",
            "An uploaded dataset (POST /v1/files, purpose 'dataset'): name it 'file:<id>'; "
            "a .txt or .jsonl file is text for language_model jobs.",
            FileOptions,
            tasks=BOTH_TASKS,
        ),
    ]
)

FILE_PREFIX = "file:"


def dataset_kind(name: str) -> str:
    """The catalog entry a dataset name refers to: 'file:<id>' is an uploaded file."""
    if name.startswith(FILE_PREFIX):
        return "file"
    if name == "file":
        raise SpecError("dataset.name", "name an uploaded dataset as 'file:<id>'")
    return name
