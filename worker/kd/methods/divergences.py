"""Divergences between two softened distributions, for the methods that replace Hinton's KL:
rows are examples (or the tokens of sequences), classes the last dimension. A teacher read
from a top-k store (a causal LM's tokens) is never built in full: the divergence is taken
over k + 1 outcomes, the k stored classes and the rest (worker/kd/losses.py's top_k_buckets)."""

import math

import torch
import torch.nn.functional as F

from worker.kd.losses import labelled_ce, top_k_buckets
from worker.kd.methods.base import Method, Outputs
from worker.softlabels import TopKRows


def kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) from log-probabilities: summed over classes, averaged over rows."""
    return F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")


def softened(student: Outputs, teacher: Outputs, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """log softmax(s / T) and log softmax(t / T), in the student's dtype."""
    s, teacher_logits = student.logits, teacher.logits
    return F.log_softmax(s / t, dim=-1), F.log_softmax(teacher_logits.to(s.dtype) / t, dim=-1)


def mixture(log_p: torch.Tensor, log_q: torch.Tensor, beta: float) -> torch.Tensor:
    """log(beta p + (1 - beta) q), computed stably, for 0 < beta < 1."""
    return torch.logaddexp(log_p + math.log(beta), log_q + math.log(1 - beta))


class DivergenceMethod(Method):
    """kd_weight * T^2 * D(teacher, student) + ce_weight * CE, for a divergence D."""

    def divergence(self, log_student: torch.Tensor, log_teacher: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(
        self, student: Outputs, teacher: Outputs, labels: torch.Tensor, *, temperature: float
    ) -> torch.Tensor:
        if isinstance(teacher.given, TopKRows):
            log_s = F.log_softmax(student.logits / temperature, dim=-1)
            log_s, log_t = top_k_buckets(log_s, teacher.given, temperature)
        else:
            log_s, log_t = softened(student, teacher, temperature)
        divergence = self.divergence(log_s, log_t)
        loss = self.kd_weight * temperature**2 * divergence
        if self.ce_weight:
            loss = loss + labelled_ce(student.logits, labels, self.ce_weight)
        return loss
