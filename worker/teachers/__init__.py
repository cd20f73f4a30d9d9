"""Where a job's teacher comes from (`teacher.source`): one file per source, registered under the
catalog's names (app.catalog.TEACHER_SOURCES)."""

from worker.teachers import hf, logits, onnx, train, weights  # noqa: F401  (registers the sources)
from worker.teachers.registry import TEACHER_SOURCES, StageRunner, TeacherContext, TeacherSource

__all__ = ["TEACHER_SOURCES", "StageRunner", "TeacherContext", "TeacherSource", "build_teacher"]


def build_teacher(context: TeacherContext) -> TeacherSource:
    return TEACHER_SOURCES.get(context.spec["source"])(context)
