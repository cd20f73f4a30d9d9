"""pretrain_teacher: the teacher source prepares the teacher (only `train` trains one), and says
what that costs."""

from worker.job_context import JobContext
from worker.stages.base import Stage, StageCost


class PretrainTeacher(Stage):
    name = "pretrain_teacher"

    def cost(self, job: JobContext) -> StageCost:
        return job.teacher.pretraining_cost()

    def run(self, job: JobContext) -> None:
        job.teacher.pretrain(job)
