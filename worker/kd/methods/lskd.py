"""`lskd`: logit-standardised KD (Sun et al., "Logit Standardization in Knowledge
Distillation", CVPR 2024). Each logit vector, the student's and the teacher's, is standardised
over its classes before the softened KL, as the authors' code does:

    z(x) = (x - mean(x)) / (std(x) + 1e-7)        (std unbiased, over classes)
    L = kd_weight * T^2 * KL(softmax(z(t)/T) || softmax(z(s)/T)) + ce_weight * CE(y, softmax(s))

so the student learns the relations between the teacher's logits rather than their range; the
CE term reads the student's own logits. A top-k teacher is standardised as its dense rows."""

import torch

from worker.kd.losses import kd_loss, labelled_ce
from worker.kd.methods.base import METHODS, Method, Outputs

EPSILON = 1e-7


def standardised(logits: torch.Tensor) -> torch.Tensor:
    """Each row less its mean, over its unbiased standard deviation plus EPSILON."""
    mean = logits.mean(dim=-1, keepdim=True)
    std = logits.std(dim=-1, keepdim=True)
    return (logits - mean) / (std + EPSILON)


@METHODS.register("lskd")
class Lskd(Method):
    def loss(
        self, student: Outputs, teacher: Outputs, labels: torch.Tensor, *, temperature: float
    ) -> torch.Tensor:
        s = student.logits
        kd = kd_loss(
            standardised(s),
            standardised(teacher.logits.to(s.dtype)),
            None,
            temperature=temperature,
            kd_weight=self.kd_weight,
            ce_weight=0.0,
        )
        if not self.ce_weight:
            return kd
        return kd + labelled_ce(s, labels, self.ce_weight)
