"""The pipeline's stages, one file each, found by discovery and run in the order the catalog
lists them (distillery.types.catalog.stages: a new stage is its file and its entry there)."""

from app.plugins import import_all
from distillery.types.catalog import STAGES as CATALOG
from worker.stages.base import Stage

import_all(__name__)


def _stages() -> tuple[Stage, ...]:
    found = {stage.name: stage for stage in Stage.__subclasses__()}
    if set(found) != set(CATALOG):
        raise RuntimeError(
            f"the worker's stages {sorted(found)} are not the catalog's {sorted(CATALOG)}"
        )
    return tuple(found[name]() for name in CATALOG)


STAGES: tuple[Stage, ...] = _stages()
STAGE_NAMES = tuple(stage.name for stage in STAGES)

__all__ = ["STAGES", "STAGE_NAMES", "Stage"]
