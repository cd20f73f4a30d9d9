"""kd_loss against a float64 reference written straight from DESIGN section 5."""

import math

import pytest
import torch

from worker.kd.losses import kd_loss
from worker.softlabels import TopKRows


def reference(s, t, y, T, kd_weight, ce_weight):  # type: ignore[no-untyped-def]
    """Plain float64 loops: KL(softmax(t/T) || softmax(s/T)) summed over classes, averaged
    over the batch, times T^2; CE averaged over labelled examples only."""
    s, t = s.double().tolist(), t.double().tolist()
    kl_total = 0.0
    ce_total, labelled = 0.0, 0
    for si, ti, yi in zip(s, t, y.tolist(), strict=True):
        p = [math.exp(v / T) for v in ti]
        q = [math.exp(v / T) for v in si]
        p = [v / sum(p) for v in p]
        q = [v / sum(q) for v in q]
        kl_total += sum(pc * (math.log(pc) - math.log(qc)) for pc, qc in zip(p, q, strict=True))
        if yi >= 0:
            z = [math.exp(v) for v in si]
            ce_total -= math.log(z[yi] / sum(z))
            labelled += 1
    kd = kd_weight * T * T * kl_total / len(s)
    ce = ce_weight * (ce_total / labelled if labelled else 0.0)
    return kd + ce


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0, 10.0])
@pytest.mark.parametrize(
    ("kd_weight", "ce_weight"), [(0.9, 0.1), (1.0, 0.0), (0.0, 1.0), (0.5, 0.5)]
)
def test_matches_float64_reference(temperature: float, kd_weight: float, ce_weight: float) -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(16, 10, generator=g) * 3
    t = torch.randn(16, 10, generator=g) * 3
    y = torch.randint(0, 10, (16,), generator=g)
    ours = kd_loss(s, t, y, temperature=temperature, kd_weight=kd_weight, ce_weight=ce_weight)
    expected = reference(s, t, y, temperature, kd_weight, ce_weight)
    assert ours.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_transfer_examples_get_only_the_kd_term() -> None:
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    y = torch.tensor([0, 1, -1, -1, 4, -1, 2, -1])
    ours = kd_loss(s, t, y, temperature=3.0, kd_weight=0.7, ce_weight=0.3)
    assert ours.item() == pytest.approx(reference(s, t, y, 3.0, 0.7, 0.3), rel=1e-5)
    # An all-transfer batch, or labels=None, is pure KD (and not NaN).
    none = kd_loss(s, t, None, temperature=3.0, kd_weight=0.7, ce_weight=0.3)
    unlabelled = kd_loss(s, t, torch.full((8,), -1), temperature=3.0, kd_weight=0.7, ce_weight=0.3)
    pure = reference(s, t, torch.full((8,), -1), 3.0, 0.7, 0.0)
    assert none.item() == pytest.approx(pure, rel=1e-5)
    assert unlabelled.item() == pytest.approx(pure, rel=1e-5)


def test_zero_when_student_equals_teacher_and_kd_only() -> None:
    logits = torch.randn(4, 7)
    loss = kd_loss(logits, logits.clone(), None, temperature=2.0, kd_weight=1.0, ce_weight=0.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_flows_to_the_student_only() -> None:
    s = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    kd_loss(
        s, t.detach(), torch.tensor([0, 1, 2, 0]), temperature=2.0, kd_weight=0.9, ce_weight=0.1
    ).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_soft_target_gradient_scale_is_kept_by_t_squared() -> None:
    """With T^2 the soft-target gradient magnitude stays of the same order as T grows."""
    g = torch.Generator().manual_seed(2)
    base_s, t = torch.randn(64, 10, generator=g), torch.randn(64, 10, generator=g) * 5
    norms = []
    for temperature in (2.0, 8.0):
        s = base_s.clone().requires_grad_(True)
        kd_loss(s, t, None, temperature=temperature, kd_weight=1.0, ce_weight=0.0).backward()
        assert s.grad is not None
        norms.append(s.grad.norm().item())
    assert 0.25 < norms[1] / norms[0] < 4.0


def test_float16_teacher_logits_are_accepted() -> None:
    s, t = torch.randn(4, 3), torch.randn(4, 3)
    full = kd_loss(s, t, None, temperature=2.0, kd_weight=1.0, ce_weight=0.0)
    half = kd_loss(s, t.half(), None, temperature=2.0, kd_weight=1.0, ce_weight=0.0)
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(full.item(), abs=1e-2)


def top_k_rows(teacher: torch.Tensor, k: int) -> TopKRows:
    """Dense teacher logits as the store keeps them in a top-k entry: the k largest, their
    classes, and the logit every other class gets (the leftover probability spread evenly)."""
    classes = teacher.shape[1]
    values, index = teacher.topk(k, dim=1)
    lse = teacher.logsumexp(dim=1)
    leftover = 1 - (values - lse[:, None]).exp().sum(dim=1)
    return TopKRows(values, index, lse + (leftover / (classes - k)).log(), classes)


def with_students_tail(top: TopKRows, s: torch.Tensor, temperature: float) -> torch.Tensor:
    """Full teacher logits that top-k KD stands for, written out densely: at temperature T the
    k stored classes have the teacher's probabilities, and its leftover mass is shared over
    the other classes in proportion to the student's probabilities there (a constant)."""
    log_p = top.dense().to(s.dtype) / temperature  # the even tail: its mass is the leftover
    log_p = log_p - log_p.logsumexp(dim=1, keepdim=True)
    stored = torch.zeros_like(log_p, dtype=torch.bool).scatter_(1, top.index, True)
    leftover = log_p.masked_fill(stored, -math.inf).logsumexp(dim=1, keepdim=True)
    log_s = torch.log_softmax(s.detach() / temperature, dim=1).masked_fill(stored, -math.inf)
    tail = leftover + log_s - log_s.logsumexp(dim=1, keepdim=True)
    return temperature * torch.where(stored, log_p, tail)


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_kd_from_top_k_rows_is_kd_from_their_full_logits(temperature: float) -> None:
    """The top-k path never builds the teacher's full logits, yet gives the same loss and the
    same gradient as kd_loss on the full logits it stands for: the k stored probabilities,
    and the leftover mass shared like the student's own tail."""

    g = torch.Generator().manual_seed(3)
    rows, classes, k = 40, 20, 5
    s = torch.randn(rows, classes, generator=g, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(rows, classes, generator=g, dtype=torch.float64) * 3
    top = top_k_rows(teacher, k)
    labels = torch.randint(0, classes, (rows,), generator=g)
    labels[::3] = -1
    weights = {"temperature": temperature, "kd_weight": 0.9, "ce_weight": 0.1}
    ours = kd_loss(s, top, labels, **weights)
    (ours_grad,) = torch.autograd.grad(ours, s)
    reference = kd_loss(s, with_students_tail(top, s, temperature), labels, **weights)
    (reference_grad,) = torch.autograd.grad(reference, s)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-12)
    assert torch.allclose(ours_grad, reference_grad, rtol=1e-10, atol=1e-14)


def test_kd_from_tail_samples_is_unbiased_for_full_logit_kd() -> None:
    """With a sample of the teacher's tail (one class a row, every class enumerated with
    its probability), the expected loss is full-logit KD plus the teacher's entropy within
    its tail (a constant), and the expected gradient is exactly full-logit KD's."""
    g = torch.Generator().manual_seed(4)
    rows, classes, k = 5, 12, 4
    s = torch.randn(rows, classes, generator=g, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(rows, classes, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, classes, (rows,), generator=g)
    weights = {"temperature": 1.0, "kd_weight": 0.8, "ce_weight": 0.2}
    top = top_k_rows(teacher, k)
    p = teacher.softmax(dim=1)
    expected = torch.zeros((), dtype=torch.float64)
    constant = 0.0
    for i in range(rows):
        tail = p[i].clone().index_fill_(0, top.index[i], 0)
        rest = float(tail.sum())
        tail = tail / rest
        constant += rest * float(-(tail[tail > 0] * tail[tail > 0].log()).sum())
        one = TopKRows(top.values[i : i + 1], top.index[i : i + 1], top.rest[i : i + 1], classes)
        for j in range(classes):
            if tail[j] > 0:
                drawn = TopKRows(one.values, one.index, one.rest, classes, torch.tensor([[j]]))
                expected = expected + tail[j] * kd_loss(
                    s[i : i + 1], drawn, labels[i : i + 1], **weights
                )
    expected = expected / rows
    (expected_grad,) = torch.autograd.grad(expected, s)
    full = kd_loss(s, teacher, labels, **weights)
    (full_grad,) = torch.autograd.grad(full, s)
    assert expected.item() == pytest.approx(full.item() + 0.8 * constant / rows, rel=1e-12)
    assert torch.allclose(expected_grad, full_grad, rtol=1e-10, atol=1e-14)


def test_tail_samples_are_read_only_at_temperature_1() -> None:
    g = torch.Generator().manual_seed(5)
    s = torch.randn(6, 10, generator=g, dtype=torch.float64)
    top = top_k_rows(torch.randn(6, 10, generator=g, dtype=torch.float64), 3)
    sampled = TopKRows(top.values, top.index, top.rest, 10, torch.zeros(6, 2, dtype=torch.long))
    weights = {"labels": None, "kd_weight": 1.0, "ce_weight": 0.0}
    assert kd_loss(s, sampled, temperature=2.0, **weights) == kd_loss(
        s, top, temperature=2.0, **weights
    )
    assert kd_loss(s, sampled, temperature=1.0, **weights) != kd_loss(
        s, top, temperature=1.0, **weights
    )
