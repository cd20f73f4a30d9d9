"""Transitional: the catalog moved to distillery.types.catalog (one module per kind); this
module re-exports it for the code that still imports it from here, and holds the layer-pair
resolution until spec resolution moves to app/jobs/spec.py."""

from typing import Any

from distillery.types.catalog import (
    AUGMENTATIONS,
    DATASETS,
    METHODS,
    MODELS,
    TASKS,
    TEACHER_SOURCES,
    TEMPERATURE_SCHEDULES,
)
from distillery.types.catalog.base import BOTH_TASKS, Entry, Params, SpecError, resolve_params
from distillery.types.catalog.datasets import *  # noqa: F403
from distillery.types.catalog.datasets import FILE_PREFIX, dataset_kind
from distillery.types.catalog.methods import *  # noqa: F403
from distillery.types.catalog.models import *  # noqa: F403
from distillery.types.catalog.models import model_layers
from distillery.types.job_spec import EXPORT_FORMATS

__all__ = [
    "AUGMENTATIONS",
    "BOTH_TASKS",
    "DATASETS",
    "EXPORT_FORMATS",
    "FILE_PREFIX",
    "METHODS",
    "MODELS",
    "TASKS",
    "TEACHER_SOURCES",
    "TEMPERATURE_SCHEDULES",
    "Entry",
    "Params",
    "SpecError",
    "dataset_kind",
    "model_layers",
    "resolve_params",
]


def method_taps_teacher(method: str) -> bool:
    """Whether the method reads the teacher's intermediate features (so it runs online)."""
    return METHODS[method].reads_layers()


def resolve_layer_pairs(spec: dict[str, Any]) -> None:
    """Fill in and check the layer pairs of `spec["distill"]["method_params"]` (resolved):
    a pair left out defaults to the last feature layer of each model; every name must be a
    layer of its model; the teacher must be a zoo model the worker can run online."""
    distill = spec["distill"]
    method = distill["method"]
    fields = METHODS[method].layer_fields()
    if not fields:
        return
    teacher, student = spec["teacher"], spec["student"]
    if "arch" not in teacher:
        raise SpecError(
            "distill.method",
            f"{method!r} reads the teacher's intermediate layers; a teacher from "
            f"{teacher['source']!r} has none (use a teacher from 'train' or 'weights', or 'kd')",
        )
    if distill["soft_labels"] == "stored":
        raise SpecError(
            "distill.soft_labels",
            f"{method!r} reads the teacher's intermediate layers at every step, which the "
            "soft-label store does not keep; use 'auto' or 'online'",
        )
    layers = {
        "teacher": model_layers(teacher["arch"], teacher["params"]),
        "student": model_layers(student["arch"], student["params"]),
    }
    for role, names in layers.items():
        if not names:
            arch = spec[role]["arch"]
            raise SpecError(f"{role}.arch", f"{arch!r} has no layers {method!r} can read")
    params = distill["method_params"]
    for name in fields:
        if params.get(name) is None:
            params[name] = [{"student": layers["student"][-1], "teacher": layers["teacher"][-1]}]
        for i, pair in enumerate(params[name]):
            for role in ("student", "teacher"):
                if pair[role] not in layers[role]:
                    raise SpecError(
                        f"distill.method_params.{name}.{i}.{role}",
                        f"{pair[role]!r} is not a layer of the {role} "
                        f"({spec[role]['arch']}); its layers: {', '.join(layers[role])}",
                    )
