"""What a stage's work is, in the units progress, ETAs and estimates count: examples through
each model (trained or inferred), epochs, optimiser steps and soft-label bytes."""

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class StageCost:
    """The work a stage implies: examples through each model, forward only (inferred) or
    forward and backward (trained), optimiser steps, and bytes written to the soft-label
    store. Known once validate has loaded the data."""

    teacher_trained: float = 0.0
    teacher_inferred: float = 0.0
    student_trained: float = 0.0  # on hard labels (the baseline)
    student_distilled: float = 0.0  # with the job's method (tune, hints, distill)
    student_inferred: float = 0.0
    epochs: int = 0
    steps: int = 0
    soft_label_bytes: int = 0
    # Shards the soft labels are labelled in, any worker of the job's queue taking one.
    soft_label_shards: int = 0

    def passes(self) -> float:
        """In example passes, progress's unit: inference counts about a third of training."""
        inferred = self.teacher_inferred + self.student_inferred
        trained = self.teacher_trained + self.student_trained + self.student_distilled
        return trained + inferred / 3

    def as_dict(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
