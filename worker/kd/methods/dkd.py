"""`dkd`: Decoupled Knowledge Distillation (Zhao et al., CVPR 2022).

With p = softmax(z/T), target class y, b = (p_y, 1 - p_y) and p^ = softmax over the non-target
logits only:

    TCKD = KL(b_teacher || b_student)      NCKD = KL(p^_teacher || p^_student)
    L = kd_weight * T^2 * (alpha * TCKD + beta * NCKD) + ce_weight * CE(y, softmax(s))

averaged over the batch. Transfer (unlabelled) examples take the teacher's top class as their
target in TCKD / NCKD and get no CE term.
"""

import torch
import torch.nn.functional as F

from worker.kd.losses import UNLABELLED, labelled_ce
from worker.kd.methods.base import METHODS, Method, Outputs


def dkd_terms(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(TCKD, NCKD), each averaged over the batch and not yet scaled by T^2."""
    s = student_logits / temperature
    t = teacher_logits.to(student_logits.dtype) / temperature
    is_target = F.one_hot(target, s.shape[-1]).bool()
    # Binary (target, rest) log-probabilities, from log-sum-exps (no log of a tiny 1 - p).
    s_all, t_all = s.logsumexp(-1), t.logsumexp(-1)
    s_rest = s.masked_fill(is_target, float("-inf")).logsumexp(-1)
    t_rest = t.masked_fill(is_target, float("-inf")).logsumexp(-1)
    s_binary = torch.stack([s.gather(-1, target[:, None])[:, 0] - s_all, s_rest - s_all], -1)
    t_binary = torch.stack([t.gather(-1, target[:, None])[:, 0] - t_all, t_rest - t_all], -1)
    tckd = F.kl_div(s_binary, t_binary, log_target=True, reduction="batchmean")
    # Non-target distributions: drop the target column, renormalise over the others.
    rows, classes = s.shape
    s_other = s[~is_target].view(rows, classes - 1)
    t_other = t[~is_target].view(rows, classes - 1)
    nckd = F.kl_div(
        F.log_softmax(s_other, -1),
        F.log_softmax(t_other, -1),
        log_target=True,
        reduction="batchmean",
    )
    return tckd, nckd


@METHODS.register("dkd")
class Dkd(Method):
    def loss(
        self, student: Outputs, teacher: Outputs, labels: torch.Tensor, *, temperature: float
    ) -> torch.Tensor:
        teacher_logits = teacher.logits
        target = torch.where(labels == UNLABELLED, teacher_logits.argmax(-1), labels)
        tckd, nckd = dkd_terms(student.logits, teacher_logits, target, temperature)
        alpha, beta = self.method_params["alpha"], self.method_params["beta"]
        loss = self.kd_weight * temperature**2 * (alpha * tckd + beta * nckd)
        if self.ce_weight:
            loss = loss + labelled_ce(student.logits, labels, self.ce_weight)
        return loss
