"""What a job of each task (`spec.task`) may name, checked before it is queued (torch-free).

Every catalog entry a spec names (datasets, models, method, teacher and student sources,
augmentation, temperature schedule) lists the tasks it serves; the task's own entry says which spec
features it takes beyond that (a transfer set, augmentation). All of it comes from the catalog
(distillery.types.catalog): a new task is its catalog entry and a `worker/learning_tasks` file."""

from typing import Any

from distillery.types.catalog import (
    AUGMENTATIONS,
    DATASETS,
    METHODS,
    MODELS,
    STAGES,
    STUDENT_SOURCES,
    TASKS,
    TEACHER_SOURCES,
    TEMPERATURE_SCHEDULES,
)
from distillery.types.catalog.base import Entry, SpecError
from distillery.types.catalog.datasets import dataset_kind
from distillery.types.catalog.tasks import DEFAULT_TASK


def _named(spec: dict[str, Any]) -> list[tuple[str, dict[str, Entry], str]]:
    """(field, entries of its kind, the entry's name) for every catalog entry `spec` names."""
    dataset, teacher, distill = spec["dataset"], spec["teacher"], spec["distill"]
    named: list[tuple[str, dict[str, Entry], str]] = [
        ("dataset.name", dict(DATASETS), dataset_kind(dataset["name"]))
    ]
    if dataset.get("transfer"):
        transfer = dataset["transfer"]["name"]
        named.append(("dataset.transfer.name", dict(DATASETS), dataset_kind(transfer)))
    if dataset.get("augment"):
        named.append(("dataset.augment.kind", dict(AUGMENTATIONS), dataset["augment"]["kind"]))
    named.append(("teacher.source", dict(TEACHER_SOURCES), teacher["source"]))
    student = spec["student"].get("source", "zoo")
    named.append(("student.source", dict(STUDENT_SOURCES), student))
    for role in ("teacher", "student"):
        if "arch" in spec[role]:
            named.append((f"{role}.arch", dict(MODELS), spec[role]["arch"]))
    named.append(("distill.method", dict(METHODS), distill["method"]))
    schedule = distill["temperature_schedule"]["kind"]
    named.append(("distill.temperature_schedule.kind", dict(TEMPERATURE_SCHEDULES), schedule))
    for step, asked in (spec.get("compress") or {}).items():
        if asked is not None:  # each compress step is the stage of its name
            named.append((f"compress.{step}", dict(STAGES), step))
    return named


def check_task(spec: dict[str, Any]) -> None:
    """Raise SpecError naming the field when the resolved `spec` names something its task
    does not take."""
    task = spec.get("task", DEFAULT_TASK)
    rules = TASKS[task]
    refused = [
        ("dataset.augment", not rules.augment and spec["dataset"].get("augment") is not None),
        ("dataset.transfer", not rules.transfer and spec["dataset"].get("transfer") is not None),
    ]
    for field, bad in refused:
        if bad:
            raise SpecError(field, f"{field} is {rules.not_yet}")
    for field, entries, name in _named(spec):
        served = entries[name].tasks
        if task not in served:
            fitting = ", ".join(repr(n) for n, e in entries.items() if task in e.tasks)
            raise SpecError(
                field,
                f"{name!r} serves the task {' and '.join(served)}, not {task!r}; for {task}: "
                f"{fitting} (see /v1/catalog for what each task takes)",
            )
