"""pretrain_teacher: the teacher source prepares the teacher (only `train` trains one)."""

import math

from worker.job_context import JobContext
from worker.stages.base import Stage, StageCost


class PretrainTeacher(Stage):
    name = "pretrain_teacher"
    place = 10

    def cost(self, job: JobContext) -> StageCost:
        teacher = job.spec["teacher"]
        if teacher["source"] != "train":
            return StageCost()
        settings, data = teacher["train"], job.data
        epochs = settings["epochs"]
        return StageCost(
            teacher_trained=float(epochs * len(data.train)),
            teacher_inferred=float(epochs * len(data.val)),
            epochs=epochs,
            steps=epochs * math.ceil(len(data.train) / settings["batch_size"]),
        )

    def run(self, job: JobContext) -> None:
        job.teacher.pretrain(job)
