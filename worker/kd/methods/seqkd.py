"""`seqkd`: sequence-level KD (Kim & Rush 2016) for language models.

The teacher_text stage has the teacher rewrite every distillation window: its first
`prompt_bytes` bytes stay, the rest is sampled from the teacher at `sample_temperature`. The
student then learns that text by next-byte cross-entropy:

    L = CE(student, the teacher's text)

(`kd_weight`, `ce_weight` and `temperature` do not apply: the teacher's text is the label.)
"""

from typing import Any

import torch

from worker.kd.losses import labelled_ce
from worker.kd.methods.base import METHODS, Method, Outputs


@METHODS.register("seqkd")
class SeqKd(Method):
    reads_teacher_logits = False

    def teacher_text(self) -> dict[str, Any] | None:
        return dict(self.method_params)

    def loss(
        self, student: Outputs, teacher: Outputs, labels: torch.Tensor, *, temperature: float
    ) -> torch.Tensor:
        return labelled_ce(student.logits, labels)
