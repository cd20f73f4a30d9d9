"""pretrain_teacher: the teacher source prepares the teacher (only `train` trains one)."""

from worker.job_context import JobContext
from worker.stages.base import Stage


class PretrainTeacher(Stage):
    name = "pretrain_teacher"

    def work(self, job: JobContext) -> float:
        teacher = job.spec["teacher"]
        if teacher["source"] != "train":
            return 0.0
        return float(teacher["train"]["epochs"] * len(job.data.train))

    def run(self, job: JobContext) -> None:
        job.teacher.pretrain(job)
