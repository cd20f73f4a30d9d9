"""The API's catalog and the worker's registries list exactly the same names."""

import pytest

from distillery import types as schemas
from distillery.types import catalog
from worker.augment import AUGMENTATIONS
from worker.data import DATASETS
from worker.kd import METHODS
from worker.kd.schedules import SCHEDULES, TemperatureSchedule
from worker.learning_tasks import TASKS
from worker.models import MODELS
from worker.registry import Registry
from worker.teachers import TEACHER_SOURCES


def test_models_match_the_catalog() -> None:
    assert MODELS.names() == sorted(catalog.MODELS)


def test_datasets_match_the_catalog() -> None:
    assert DATASETS.names() == sorted(catalog.DATASETS)


def test_teacher_sources_match_the_catalog_and_the_job_schema() -> None:
    assert TEACHER_SOURCES.names() == sorted(catalog.TEACHER_SOURCES)
    examples = {
        "train": {"arch": "mlp"},
        "weights": {"arch": "mlp", "file_id": "file_x"},
        "onnx": {"file_id": "file_x"},
        "logits": {"file_id": "file_x"},
        "hf": {"file_id": "file_x"},
        "gguf": {"file_id": "file_x"},
    }
    assert set(examples) == set(catalog.TEACHER_SOURCES)
    for source, fields in examples.items():
        body = {
            "dataset": {"name": "digits"},
            "teacher": {"source": source, **fields},
            "student": {"arch": "mlp"},
        }
        assert schemas.JobCreate.model_validate(body).teacher.source == source
    with pytest.raises(ValueError, match=r"teacher\.source must be one of"):
        schemas.JobCreate.model_validate(
            {
                "dataset": {"name": "digits"},
                "teacher": {"source": "hub", "file_id": "file_x"},
                "student": {"arch": "mlp"},
            }
        )


def test_methods_match_the_catalog() -> None:
    assert METHODS.names() == sorted(catalog.METHODS)


def test_schedules_augmentations_and_tasks_match_the_catalog() -> None:
    assert SCHEDULES.names() == sorted(catalog.TEMPERATURE_SCHEDULES)
    assert AUGMENTATIONS.names() == sorted(catalog.AUGMENTATIONS)
    assert TASKS.names() == sorted(catalog.TASKS)


SCHEDULE_EXAMPLES = {
    "constant": {"kind": "constant"},
    "linear": {"kind": "linear", "end": 1.0},
    "cosine": {"kind": "cosine", "end": 1.0},
    "step": {"kind": "step", "step_size": 2, "gamma": 0.5},
    "plateau": {"kind": "plateau"},
}


@pytest.mark.parametrize("kind", catalog.TEMPERATURE_SCHEDULES)
def test_every_schedule_in_the_catalog_is_accepted_and_implemented(kind: str) -> None:
    spec = schemas.DistillSpec(temperature_schedule=SCHEDULE_EXAMPLES[kind])  # type: ignore[arg-type]
    resolved = spec.model_dump(mode="json")["temperature_schedule"]
    assert TemperatureSchedule(resolved, 4.0, 10).temperature(0) == 4.0


def test_registry_fails_loudly() -> None:
    registry: Registry[int] = Registry("thing")
    registry.register("a")(1)
    with pytest.raises(KeyError, match="unknown thing 'b'; known: a"):
        registry.get("b")
    with pytest.raises(KeyError, match="registered twice"):
        registry.register("a")(2)


def test_the_pipeline_runs_the_catalogs_stages_in_its_order() -> None:
    from worker.stages import STAGE_NAMES

    assert tuple(catalog.STAGES) == STAGE_NAMES
