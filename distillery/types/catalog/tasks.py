"""Learning tasks (`task`): what the models learn, what a job of the task may use beyond the
entries that list it (transfer sets, augmentation), and how its results read: the test metric
the report shows, the validation metric the curves plot, the quality the compression keeps.
`worker/learning_tasks/` implements each under the same name, one file each."""

from dataclasses import dataclass
from typing import Any

from distillery.types.catalog.base import CLASSIFICATION, LANGUAGE_MODEL, Entry, Params, by_name


class NoParams(Params):
    """A task takes no parameters."""


@dataclass(frozen=True)
class Metric:
    """A metric as results show it: its key, a short title, how to format it, whether higher is
    better, and the unit a difference is told in (points: x100)."""

    key: str
    title: str
    format: str
    higher_is_better: bool
    unit: str
    # A label short enough for a progress line (the CLI's).
    short: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "format": self.format,
            "higher_is_better": self.higher_is_better,
            "unit": self.unit,
            "short": self.short or self.title,
        }


@dataclass(frozen=True)
class Quality:
    """What `result.compression` says of the student's quality against the teacher: its key,
    a title (the dashboard's) and a sentence with {} for the value (the CLI's)."""

    key: str
    title: str
    sentence: str


@dataclass(frozen=True)
class TaskEntry(Entry):
    params: type[Params] = NoParams
    transfer: bool = True
    augment: bool = True
    # Why a feature the task does not take is not offered, for the error message.
    not_yet: str = "not offered for this task"
    # The report's test metric (result key of each model) and the curves' validation metric.
    test_metric: Metric | None = None
    validation_metric: Metric | None = None
    quality: Quality | None = None

    def capabilities(self) -> dict[str, Any]:
        return {
            "transfer": self.transfer,
            "augment": self.augment,
            "test_metric": self.test_metric.as_json() if self.test_metric else None,
            "validation_metric": (
                self.validation_metric.as_json() if self.validation_metric else None
            ),
            "quality": None if self.quality is None else vars(self.quality),
        }


DEFAULT_TASK = CLASSIFICATION

TASKS: dict[str, TaskEntry] = by_name(
    [
        TaskEntry(
            CLASSIFICATION,
            "One label per example (numbers, images or text); accuracy and cross-entropy.",
            tasks=(CLASSIFICATION,),
            test_metric=Metric("test_accuracy", "test acc", "{:>9.4f}", True, "points"),
            validation_metric=Metric(
                "val_accuracy", "Validation accuracy", "{:.4f}", True, "points", "val_acc"
            ),
            quality=Quality(
                "accuracy_retention", "test accuracy, student / teacher", "accuracy retention {}"
            ),
        ),
        TaskEntry(
            LANGUAGE_MODEL,
            "The next byte at every position of a text; loss, perplexity and bits per byte.",
            tasks=(LANGUAGE_MODEL,),
            transfer=False,
            augment=False,
            not_yet="not offered for language_model yet",
            test_metric=Metric(
                "test_bits_per_byte", "test bpb", "{:>9.4f}", False, "bits per byte"
            ),
            validation_metric=Metric(
                "val_bits_per_byte",
                "Validation bits per byte",
                "{:.4f}",
                False,
                "bits per byte",
                "val_bpb",
            ),
            quality=Quality(
                "bits_per_byte_over_teacher",
                "bits per byte, student - teacher",
                "{} bits per byte over the teacher",
            ),
        ),
    ]
)
