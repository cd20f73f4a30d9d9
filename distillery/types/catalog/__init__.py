"""The catalog: what a job may name, one module per kind of entry (models, datasets, methods,
teacher sources, student sources, temperature schedules, augmentations, tasks, stages). Each entry
carries its name, parameter schema, tasks and capabilities; the job spec's unions and the API's
checks are derived from them, and `GET /v1/catalog/<kind>` lists them."""

from distillery.types.catalog.augmentations import AUGMENTATIONS
from distillery.types.catalog.base import Entry, SpecError, resolve_params
from distillery.types.catalog.datasets import DATASETS, FILE_PREFIX, dataset_kind
from distillery.types.catalog.methods import METHODS
from distillery.types.catalog.models import MODELS, model_layers
from distillery.types.catalog.schedules import TEMPERATURE_SCHEDULES
from distillery.types.catalog.stages import STAGES
from distillery.types.catalog.student_sources import STUDENT_SOURCES
from distillery.types.catalog.tasks import TASKS
from distillery.types.catalog.teacher_sources import TEACHER_SOURCES

# Each kind as the catalog endpoint names it (`GET /v1/catalog/<kind>`).
KINDS: dict[str, dict[str, Entry]] = {
    "models": dict(MODELS),
    "datasets": dict(DATASETS),
    "methods": dict(METHODS),
    "teacher_sources": dict(TEACHER_SOURCES),
    "student_sources": dict(STUDENT_SOURCES),
    "schedules": dict(TEMPERATURE_SCHEDULES),
    "augmentations": dict(AUGMENTATIONS),
    "tasks": dict(TASKS),
    "stages": dict(STAGES),
}

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "FILE_PREFIX",
    "KINDS",
    "METHODS",
    "MODELS",
    "STAGES",
    "STUDENT_SOURCES",
    "TASKS",
    "TEACHER_SOURCES",
    "TEMPERATURE_SCHEDULES",
    "Entry",
    "SpecError",
    "dataset_kind",
    "model_layers",
    "resolve_params",
]
