"""random_init: when the student source asks (`from_teacher`'s `random_init_baseline`), the
student's architecture from random init, trained on hard labels like the baseline (same seed,
optimiser settings and steps). Beside the baseline, which starts from the pruned teacher
weights, it answers how much the teacher's weights were worth as a start: Minitron's
comparison of a pruned-and-distilled model with the same model trained from scratch."""

from worker.job_context import JobContext
from worker.stages.base import Stage, StageCost, student_training
from worker.stages.baseline import train_alone


class RandomInit(Stage):
    name = "random_init"

    def applies(self, job: JobContext) -> bool:
        return "random_init" in job.student_models

    def cost(self, job: JobContext) -> StageCost:
        return student_training(job, job.spec["distill"]["epochs"], distilled=False)

    def run(self, job: JobContext) -> None:
        job.random_init = train_alone(job, job.build_random_init, "random_init")
