"""What a pipeline stage is: a name, whether it applies to a job, how much work it plans (in
example passes, for progress), and what it does to the job's context."""

from typing import ClassVar

from worker.job_context import JobContext


class Stage:
    name: ClassVar[str]

    def applies(self, job: JobContext) -> bool:
        return True

    def work(self, job: JobContext) -> float:
        """Planned work in example passes (known once validate has loaded the data)."""
        return 0.0

    def run(self, job: JobContext) -> None:
        raise NotImplementedError


def inference_work(job: JobContext) -> float:
    """A pass of inference over the distillation examples costs about a third of a training pass."""
    return len(job.data.distill) / 3
