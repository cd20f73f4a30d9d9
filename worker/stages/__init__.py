"""The pipeline's stages, one file each, in the order they run."""

from worker.stages.base import Stage
from worker.stages.baseline import Baseline
from worker.stages.distill import Distill
from worker.stages.evaluate import Evaluate
from worker.stages.export import Export
from worker.stages.hints import Hints
from worker.stages.pretrain_teacher import PretrainTeacher
from worker.stages.soft_labels import SoftLabels
from worker.stages.teacher_text import TeacherText
from worker.stages.tune import Tune
from worker.stages.validate import Validate

STAGES: tuple[Stage, ...] = (
    Validate(),
    PretrainTeacher(),
    SoftLabels(),
    TeacherText(),
    Tune(),
    Hints(),
    Distill(),
    Baseline(),
    Evaluate(),
    Export(),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)

__all__ = ["STAGES", "STAGE_NAMES", "Stage"]
