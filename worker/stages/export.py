"""export: the student in the spec's formats, with the report, metrics and manifest."""

from worker import packaging
from worker.job_context import JobContext
from worker.stages.base import Stage


class Export(Stage):
    name = "export"

    def run(self, job: JobContext) -> None:
        packaging.package(job, job.report)
