"""Distillation losses (DESIGN section 5)."""

import torch
import torch.nn.functional as F

UNLABELLED = -1


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
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
    (0 when a batch has none).
    """
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
