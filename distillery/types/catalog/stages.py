"""Pipeline stages (a job's `stage`, its events and metrics): the order they run in, what each
does, and which model's training curves it records (`trains`: teacher, student, baseline or
random_init). `worker/stages/` implements each under the same name, one file each, and runs
them in this order; the dashboard draws a curve per stage that trains a model."""

from dataclasses import dataclass
from typing import Any

from distillery.types.catalog.base import BOTH_TASKS, CLASSIFICATION, Entry, Params, by_name


class NoParams(Params):
    """A stage takes no parameters of its own (the spec's parts configure it)."""


@dataclass(frozen=True)
class StageEntry(Entry):
    params: type[Params] = NoParams
    tasks: tuple[str, ...] = BOTH_TASKS
    # The model whose per-epoch metrics the stage records (None: it records none).
    trains: str | None = None

    def capabilities(self) -> dict[str, Any]:
        return {"order": list(STAGES).index(self.name), "trains": self.trains}


# In the order they run; a stage runs when it applies to the job.
STAGES: dict[str, StageEntry] = by_name(
    [
        StageEntry(
            "validate",
            "Load the data, build the teacher and the student, check the job can run; then the "
            "job estimates itself.",
        ),
        StageEntry(
            "pretrain_teacher",
            "The teacher source prepares the teacher (a `train` teacher is trained).",
            trains="teacher",
        ),
        StageEntry(
            "soft_labels", "The teacher's logits of the distillation examples, stored once."
        ),
        StageEntry(
            "teacher_text",
            "`seqkd`: the teacher rewrites each distillation window after its prompt.",
        ),
        StageEntry("tune", '"auto" temperature / kd_weight: short candidates, the best kept.'),
        StageEntry("hints", "A two-stage method's first stage: its feature terms alone."),
        # Before distill: the teacher is checked against the student trained alone (a
        # `warning` when it scores worse) before distillation spends its budget.
        StageEntry(
            "baseline",
            "The same student from scratch on hard labels, for the same steps; then the teacher "
            "is checked against it.",
            trains="baseline",
        ),
        StageEntry(
            "random_init",
            "When the student source asks (`random_init_baseline`): the student's architecture "
            "from random init on hard labels, for the same steps.",
            trains="random_init",
        ),
        StageEntry("distill", "The student, trained with the job's method.", trains="student"),
        StageEntry("evaluate", "Teacher, student and baseline on the test split."),
        StageEntry(
            "prune",
            "`compress.prune`: the student's coupled channel groups pruned to a parameter or "
            "latency target (torch-pruning), then a short KD recovery from the stored labels.",
            tasks=(CLASSIFICATION,),
            trains="pruned",
        ),
        StageEntry(
            "quantize",
            "`compress.quantize`: the student's ONNX graph (the pruned one's, when asked) in "
            "int8 (static QDQ calibrated on training examples, or dynamic), measured on the test "
            "split in onnxruntime; beyond its tolerance, quantisation-aware KD and again.",
            trains="qat",
        ),
        StageEntry(
            "frontier",
            "Every model the job produced (teacher, baselines, student, pruned, int8) timed and "
            "scored the same way in onnxruntime on one CPU thread: size, p50 / p95 latency, "
            "batch-32 throughput, test metric, % of the teacher's, top-1 agreement.",
        ),
        StageEntry("export", "The student in the spec's formats, the report and manifest."),
    ]
)
