"""Where a job's teacher comes from (`teacher.source`): one file per source, registered under the
catalog's names (distillery.types.catalog.teacher_sources); found by discovery."""

from app.plugins import import_all
from worker.teachers.registry import TEACHER_SOURCES, StageRunner, TeacherContext, TeacherSource

import_all(__name__)

__all__ = ["TEACHER_SOURCES", "StageRunner", "TeacherContext", "TeacherSource", "build_teacher"]


def build_teacher(context: TeacherContext) -> TeacherSource:
    return TEACHER_SOURCES.get(context.spec["source"])(context)
