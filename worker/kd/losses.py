"""Distillation losses (DESIGN section 5)."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from worker.softlabels import TeacherLogits, TopKRows

UNLABELLED = -1


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: TeacherLogits,
    labels: torch.Tensor | None,
    *,
    temperature: float,
    kd_weight: float,
    ce_weight: float,
) -> torch.Tensor:
    """Hinton et al. 2015:

        kd_weight * T^2 * KL(softmax(t/T) || softmax(s/T)) + ce_weight * CE(y, softmax(s))

    KL is summed over classes and averaged over the batch; T^2 keeps the soft-target gradients
    on the scale of the hard-label term. Labels equal to -1 (or labels=None) mark transfer
    examples: they get the KD term only, and the CE term is the mean over labelled examples
    (0 when a batch has none). Teacher logits kept as top-k rows take `top_k_kd_loss`, the
    same value without building the full teacher tensor.
    """
    if isinstance(teacher_logits, TopKRows):
        return top_k_kd_loss(
            student_logits,
            teacher_logits,
            labels,
            temperature=temperature,
            kd_weight=kd_weight,
            ce_weight=ce_weight,
        )
    t = temperature
    kl = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.log_softmax(teacher_logits.to(student_logits.dtype) / t, dim=-1),
        log_target=True,
        reduction="batchmean",
    )
    loss = kd_weight * t * t * kl
    if ce_weight and labels is not None:
        loss = loss + labelled_ce(student_logits, labels, ce_weight)
    return loss


def labelled_ce(
    student_logits: torch.Tensor, labels: torch.Tensor, weight: float = 1.0
) -> torch.Tensor:
    """`weight` x the mean cross-entropy over the labelled examples (label != -1); 0 for a
    batch with none.

    A masked mean rather than ignore_index or a branch on "all labelled": no host sync per
    step on a GPU, and 0 (not NaN) for a batch with no labels. The weight multiplies the sum
    before the division, the order `kd` has always had: a reordering would change its students
    in the last bits, and with them every published number."""
    labelled = labels != UNLABELLED
    ce = F.cross_entropy(student_logits, labels.clamp_min(0), reduction="none")
    return weight * (ce * labelled).sum() / labelled.sum().clamp_min(1)


@dataclass
class SoftTopK:
    """A top-k teacher softened at temperature T, as log-probabilities: `log_p` (rows, k) of
    its stored classes `index`, `log_q` (rows,) of each of the `others` = C - k classes it did
    not store (the leftover mass spread evenly). Constants of the loss (no gradient)."""

    log_p: torch.Tensor
    index: torch.Tensor
    log_q: torch.Tensor
    others: int


def soften_top_k(teacher: TopKRows, temperature: float, dtype: torch.dtype) -> SoftTopK:
    others = teacher.classes - teacher.values.shape[1]
    with torch.no_grad():
        a = teacher.values.to(dtype) / temperature
        b = teacher.rest.to(dtype) / temperature
        lse = torch.logsumexp(torch.cat([a, (b + math.log(others))[:, None]], dim=1), dim=1)
        return SoftTopK(a - lse[:, None], teacher.index, b - lse, others)


def top_k_forward_kl(log_s: torch.Tensor, teacher: SoftTopK) -> torch.Tensor:
    """KL(p_t || p_s) summed over classes, averaged over rows, for a top-k teacher, in
    O(rows x k) beyond the student's own log-probabilities `log_s`:

        sum_i p_i log p_i + (C - k) q log q - sum_i p_i log s_{c_i} - q (sum_c log s_c
        - sum_i log s_{c_i})"""
    p, q = teacher.log_p.exp(), teacher.log_q.exp()
    constant = (p * teacher.log_p).sum(dim=1) + teacher.others * q * teacher.log_q
    picked = log_s.gather(1, teacher.index)
    cross = (p * picked).sum(dim=1) + q * (log_s.sum(dim=1) - picked.sum(dim=1))
    return (constant - cross).sum() / len(log_s)


def top_k_reverse_kl(log_s: torch.Tensor, teacher: SoftTopK) -> torch.Tensor:
    """KL(p_s || p_t) for a top-k teacher: the student's negative entropy less

    sum_i s_{c_i} log p_i + log q (1 - sum_i s_{c_i})"""
    s = log_s.exp()
    picked = s.gather(1, teacher.index)
    cross = (picked * teacher.log_p).sum(dim=1) + teacher.log_q * (1 - picked.sum(dim=1))
    return ((s * log_s).sum(dim=1) - cross).sum() / len(log_s)


def top_k_mixture(log_s: torch.Tensor, teacher: SoftTopK, beta: float) -> torch.Tensor:
    """log M, M = beta p_t + (1 - beta) p_s, over every class (the student's size), for
    0 < beta < 1: the teacher's uniform tail first, then its k stored classes scattered in."""
    log_beta, log_rest = math.log(beta), math.log(1 - beta)
    log_m = torch.logaddexp(log_s + log_rest, (teacher.log_q + log_beta)[:, None])
    picked = torch.logaddexp(log_s.gather(1, teacher.index) + log_rest, teacher.log_p + log_beta)
    return log_m.scatter(1, teacher.index, picked)


def top_k_kl_to_mixture(log_m: torch.Tensor, teacher: SoftTopK) -> torch.Tensor:
    """KL(p_t || M) for a top-k teacher and the mixture's log-probabilities `log_m`."""
    p, q = teacher.log_p.exp(), teacher.log_q.exp()
    picked = log_m.gather(1, teacher.index)
    stored = (p * (teacher.log_p - picked)).sum(dim=1)
    tail = q * (teacher.others * teacher.log_q - (log_m.sum(dim=1) - picked.sum(dim=1)))
    return (stored + tail).sum() / len(log_m)


def top_k_kd_loss(
    student_logits: torch.Tensor,
    teacher: TopKRows,
    labels: torch.Tensor | None,
    *,
    temperature: float,
    kd_weight: float,
    ce_weight: float,
) -> torch.Tensor:
    """kd_loss for a teacher kept as top-k rows, equal to kd_loss(s, teacher.dense(), ...)
    but O(rows x k) beyond the student's own log-softmax (top_k_forward_kl). At T = 1 the CE
    term reads the same log s."""
    t = temperature
    log_s = F.log_softmax(student_logits / t, dim=-1)
    loss = kd_weight * t * t * top_k_forward_kl(log_s, soften_top_k(teacher, t, log_s.dtype))
    if ce_weight and labels is not None:
        if t == 1:
            labelled = labels != UNLABELLED
            ce = -log_s.gather(1, labels.clamp_min(0)[:, None]).squeeze(1)
            loss = loss + ce_weight * (ce * labelled).sum() / labelled.sum().clamp_min(1)
        else:
            loss = loss + labelled_ce(student_logits, labels, ce_weight)
    return loss
