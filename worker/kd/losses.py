"""Distillation losses (DESIGN section 5)."""

import math

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
    (0 when a batch has none). Teacher logits kept as top-k rows take `top_k_kd_loss`: the KL
    over the k stored classes and the rest, without building the full teacher tensor.
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


def top_k_buckets(
    log_s: torch.Tensor, teacher: TopKRows, temperature: float, sampled_tail: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The student's and the teacher's log-probabilities over k + 1 outcomes per row: each of
    the teacher's k stored classes, and "the rest" (every class it did not store), the
    student's from its softened log-probabilities `log_s`, the teacher's softened at T.

    A divergence between these is the divergence from a teacher whose leftover mass follows
    the student's own shape over the classes it did not store (that shape held constant):
    the store knows only how much mass the rest has, so the KD term teaches that much and
    not how the rest is shared out, which an even spread would (flat, wrongly). The
    teacher's rest at T != 1 is softened as if its mass were spread evenly (the store keeps
    no more). The student's rest is 1 - its mass on the k, exact to its dtype's rounding in
    absolute terms (what the gradient, bucket probability minus teacher's, sees); a
    log-sum-exp over the other classes would be exact in relative terms too, but made the
    KD + CE step on a 49,152-token vocabulary (1,024 rows) 645 ms against 311 ms. A rest
    that rounds to nothing is taken as the smallest positive number, so the loss stays
    finite.

    `sampled_tail` (forward KL only, T = 1, an entry that keeps tail samples): the student's
    rest is instead the mean of its log-probabilities at the classes drawn from the
    teacher's tail. KL(buckets) is then sum_k p_i log(p_i / q_i) + p_rest (log p_rest -
    mean log q_j), whose expectation over the draws is KL(p || q) + p_rest H(p_tail) (a
    constant: the teacher's entropy within its tail) and whose gradient's expectation is
    exactly the full-logit KL's: the tail's shape is taught too, without bias (Anshumann et
    al. 2025, "Sparse Logit Sampling", with the k largest kept exactly)."""
    others = teacher.classes - teacher.values.shape[1]
    with torch.no_grad():
        stored = teacher.values.to(log_s.dtype) / temperature
        rest = teacher.rest.to(log_s.dtype) / temperature + math.log(others)
        log_t = F.log_softmax(torch.cat([stored, rest[:, None]], dim=1), dim=1)
    picked = log_s.gather(1, teacher.index)
    if sampled_tail and teacher.tail is not None and temperature == 1:
        student_rest = log_s.gather(1, teacher.tail).mean(dim=1)
    else:
        tiny = torch.finfo(log_s.dtype).tiny
        student_rest = (1 - picked.exp().sum(dim=1)).clamp_min(tiny).log()
    return torch.cat([picked, student_rest[:, None]], dim=1), log_t


def top_k_kd_loss(
    student_logits: torch.Tensor,
    teacher: TopKRows,
    labels: torch.Tensor | None,
    *,
    temperature: float,
    kd_weight: float,
    ce_weight: float,
) -> torch.Tensor:
    """kd_loss for a teacher kept as top-k rows: KL over the k stored classes and the rest
    (top_k_buckets; with the entry's tail samples at T = 1), never building the teacher's
    full logits. At T = 1 the CE term reads the same log s."""
    t = temperature
    log_s = F.log_softmax(student_logits / t, dim=-1)
    buckets, log_t = top_k_buckets(log_s, teacher, t, sampled_tail=True)
    kl = F.kl_div(buckets, log_t, log_target=True, reduction="batchmean")
    loss = kd_weight * t * t * kl
    if ce_weight and labels is not None:
        if t == 1:
            labelled = labels != UNLABELLED
            ce = -log_s.gather(1, labels.clamp_min(0)[:, None]).squeeze(1)
            loss = loss + ce_weight * (ce * labelled).sum() / labelled.sum().clamp_min(1)
        else:
            loss = loss + labelled_ce(student_logits, labels, ce_weight)
    return loss
