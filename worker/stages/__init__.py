"""The pipeline's stages, one file each, found by discovery and run in the order of the place
each names (`Stage.place`)."""

from app.plugins import import_all
from worker.stages.base import Stage

import_all(__name__)


def _stages() -> tuple[Stage, ...]:
    found = sorted(Stage.__subclasses__(), key=lambda stage: stage.place)
    places = [stage.place for stage in found]
    if len(set(places)) != len(places):
        raise RuntimeError(f"two stages name one place: {[(s.name, s.place) for s in found]}")
    return tuple(stage() for stage in found)


STAGES: tuple[Stage, ...] = _stages()
STAGE_NAMES = tuple(stage.name for stage in STAGES)

__all__ = ["STAGES", "STAGE_NAMES", "Stage"]
