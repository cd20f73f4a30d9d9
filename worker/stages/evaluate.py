"""evaluate: teacher, student and baselines on the held-out test split."""

from worker import packaging
from worker.job_context import JobContext
from worker.stages.base import Stage, StageCost


class Evaluate(Stage):
    name = "evaluate"

    def cost(self, job: JobContext) -> StageCost:
        # The test split through the teacher (a zoo model; other sources may answer from a
        # file), the student and the baselines.
        test = float(len(job.data.test))
        return StageCost(teacher_inferred=test, student_inferred=len(job.student_models) * test)

    def run(self, job: JobContext) -> None:
        job.report = packaging.build_report(job)
