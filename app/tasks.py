"""What a job of each task (`spec.task`) may name, checked before it is queued (torch-free).

Every catalog entry a spec names (dataset, transfer set, models, method) lists the tasks it
serves (`Entry.tasks`); a task's `Rules` say which teacher sources and spec features it takes
beyond that. A new task is a `Rules` here and a `worker/learning_tasks` file.
"""

from dataclasses import dataclass
from typing import Any

from app import catalog
from app.catalog import SpecError


@dataclass(frozen=True)
class Rules:
    teacher_sources: tuple[str, ...] = catalog.TEACHER_SOURCES
    augment: bool = True
    transfer: bool = True
    # Why a feature is not offered yet, for the error message.
    not_yet: str = ""


RULES: dict[str, Rules] = {
    "classification": Rules(),
    "language_model": Rules(
        teacher_sources=("train", "weights"),
        augment=False,
        transfer=False,
        not_yet="not offered for language_model yet",
    ),
}


def check_task(spec: dict[str, Any]) -> None:
    """Raise SpecError naming the field when the resolved `spec` names something its task
    does not take."""
    task = spec.get("task", "classification")
    rules = RULES[task]
    named = [("dataset.name", catalog.DATASETS, catalog.dataset_kind(spec["dataset"]["name"]))]
    if spec["dataset"].get("transfer"):
        transfer = spec["dataset"]["transfer"]["name"]
        named.append(("dataset.transfer.name", catalog.DATASETS, catalog.dataset_kind(transfer)))
    for role in ("teacher", "student"):
        if "arch" in spec[role]:
            named.append((f"{role}.arch", catalog.MODELS, spec[role]["arch"]))
    named.append(("distill.method", catalog.METHODS, spec["distill"]["method"]))
    for field, entries, name in named:
        served = entries[name].tasks
        if task not in served:
            raise SpecError(
                field,
                f"{name!r} serves the task {' and '.join(served)}, not {task!r}; "
                f"see /v1/catalog for what each task takes",
            )
    source = spec["teacher"]["source"]
    if source not in rules.teacher_sources:
        raise SpecError(
            "teacher.source",
            f"a teacher from {source!r} is {rules.not_yet}; use "
            + " or ".join(repr(s) for s in rules.teacher_sources),
        )
    refused = [
        ("dataset.augment", not rules.augment and spec["dataset"].get("augment") is not None),
        ("dataset.transfer", not rules.transfer and spec["dataset"].get("transfer") is not None),
    ]
    for field, bad in refused:
        if bad:
            raise SpecError(field, f"{field} is {rules.not_yet}")
