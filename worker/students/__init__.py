"""Where a job's student comes from (`student.source`): one file per source, registered under
the catalog's names (distillery.types.catalog.student_sources); found by discovery."""

from app.plugins import import_all
from worker.students.registry import STUDENT_SOURCES, StudentContext, StudentSource

import_all(__name__)

__all__ = ["STUDENT_SOURCES", "StudentContext", "StudentSource", "build_student_source"]


def build_student_source(context: StudentContext) -> StudentSource:
    return STUDENT_SOURCES.get(context.spec.get("source", "zoo"))(context)
