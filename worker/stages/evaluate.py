"""evaluate: teacher, student and baseline on the held-out test split."""

from worker import packaging
from worker.job_context import JobContext
from worker.stages.base import Stage, inference_work


class Evaluate(Stage):
    name = "evaluate"

    def work(self, job: JobContext) -> float:
        return inference_work(job)

    def run(self, job: JobContext) -> None:
        job.report = packaging.build_report(job)
