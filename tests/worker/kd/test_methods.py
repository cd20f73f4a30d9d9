"""Each method's loss against a float64 reference written from its paper's formula."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from tests.worker.kd.test_losses import top_k_rows, with_students_tail
from worker.kd import METHODS, Outputs, build_method
from worker.kd.losses import kd_loss
from worker.softlabels import TopKRows

DISTILL = {"kd_weight": 0.9, "ce_weight": 0.1}


def _softmax(v: np.ndarray) -> np.ndarray:
    e = np.exp(v - v.max())
    return e / e.sum()


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q, strict=True)))


def _ce(s: np.ndarray, y: np.ndarray) -> float:
    """Mean CE over labelled rows (label >= 0); 0 with none."""
    rows = [-math.log(_softmax(si)[yi]) for si, yi in zip(s, y, strict=True) if yi >= 0]
    return sum(rows) / len(rows) if rows else 0.0


def dkd_reference(s, t, y, T, alpha, beta, kd_weight, ce_weight):  # type: ignore[no-untyped-def]
    """Zhao et al. 2022, eq. (1)-(3), per example in float64: b = (p_t, 1 - p_t) and p^ the
    distribution over the non-target classes; DKD = alpha TCKD + beta NCKD, times T^2."""
    s, t = s.double().numpy(), t.double().numpy()
    total = 0.0
    for si, ti, yi in zip(s, t, y.tolist(), strict=True):
        target = yi if yi >= 0 else int(np.argmax(ti))
        ps, pt = _softmax(si / T), _softmax(ti / T)
        bs = np.array([ps[target], 1 - ps[target]])
        bt = np.array([pt[target], 1 - pt[target]])
        others = [k for k in range(len(si)) if k != target]
        hat_s = ps[others] / ps[others].sum()
        hat_t = pt[others] / pt[others].sum()
        total += alpha * _kl(bt, bs) + beta * _kl(hat_t, hat_s)
    return kd_weight * T * T * total / len(s) + ce_weight * _ce(s, y.numpy())


@pytest.mark.parametrize("temperature", [1.0, 4.0])
@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 8.0), (0.5, 2.0), (0.0, 1.0)])
def test_dkd_matches_the_paper(temperature: float, alpha: float, beta: float) -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(12, 10, generator=g, dtype=torch.float64) * 3
    t = torch.randn(12, 10, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (12,), generator=g)
    y[[2, 7]] = -1  # transfer examples: the teacher's top class is their target
    method = build_method(
        {"method": "dkd", "method_params": {"alpha": alpha, "beta": beta}, **DISTILL}
    )
    ours = method.loss(Outputs(s), Outputs(t), y, temperature=temperature)
    expected = dkd_reference(s, t, y, temperature, alpha, beta, 0.9, 0.1)
    assert ours.item() == pytest.approx(expected, rel=1e-9)


def test_dkd_with_alpha_and_beta_one_is_not_kd_but_close_to_it() -> None:
    """The paper's identity: KD = TCKD + (1 - p_t^T) NCKD, so alpha=1, beta=1 differs from KD
    only by the teacher's target confidence weighting NCKD."""
    g = torch.Generator().manual_seed(3)
    s = torch.randn(6, 5, generator=g, dtype=torch.float64)
    t = torch.randn(6, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (6,), generator=g)
    T = 2.0
    from worker.kd.methods.dkd import dkd_terms

    tckd, nckd = dkd_terms(s, t, y, T)
    pt_target = torch.softmax(t / T, -1).gather(1, y[:, None])[:, 0]
    # Per example: KD_i = TCKD_i + (1 - p_t,i) NCKD_i; check on one-example batches.
    for i in range(6):
        ti, ni = dkd_terms(s[i : i + 1], t[i : i + 1], y[i : i + 1], T)
        kd = kd_loss(s[i : i + 1], t[i : i + 1], None, temperature=T, kd_weight=1.0, ce_weight=0)
        assert (kd / T**2).item() == pytest.approx((ti + (1 - pt_target[i]) * ni).item(), rel=1e-9)
    assert tckd.item() > 0 and nckd.item() > 0


def conv_features(generator: torch.Generator, channels: int, size: int) -> torch.Tensor:
    return torch.randn(4, channels, size, size, generator=generator, dtype=torch.float64)


def test_fitnets_matches_the_paper() -> None:
    g = torch.Generator().manual_seed(1)
    s_feat, t_feat = conv_features(g, 3, 4), conv_features(g, 5, 4)
    s, t = torch.randn(4, 10, generator=g).double(), torch.randn(4, 10, generator=g).double()
    y = torch.tensor([1, -1, 3, 4])
    params = {"hints": [{"student": "a", "teacher": "b"}], "hint_weight": 2.5}
    method = build_method({"method": "fitnets", "method_params": params, **DISTILL}).double()
    method.build({"a": s_feat}, {"b": t_feat})
    ours = method.loss(Outputs(s, {"a": s_feat}), Outputs(t, {"b": t_feat}), y, temperature=4.0)
    # r is a 1x1 convolution: r(v)[c_t, i, j] = sum_c W[c_t, c] v[c, i, j] + bias[c_t].
    (regressor,) = method.regressors
    w = regressor.weight.detach().double().numpy()[:, :, 0, 0]
    b = regressor.bias.detach().double().numpy()
    v, u = s_feat.numpy(), t_feat.numpy()
    squared, count = 0.0, 0
    for n in range(4):
        for ct in range(5):
            for i in range(4):
                for j in range(4):
                    r = sum(w[ct, c] * v[n, c, i, j] for c in range(3)) + b[ct]
                    squared += (u[n, ct, i, j] - r) ** 2
                    count += 1
    hinton = kd_loss(s, t, y, temperature=4.0, kd_weight=0.9, ce_weight=0.1).item()
    assert ours.item() == pytest.approx(hinton + 2.5 * squared / count, rel=1e-9)


def at_map(a: np.ndarray) -> np.ndarray:
    """Q_j = sum_c |A_cj|^2 over the flattened positions j, divided by its L2 norm."""
    q = (a**2).sum(axis=0).reshape(-1)
    return q / math.sqrt(float((q**2).sum()))


def test_attention_transfer_matches_the_paper() -> None:
    g = torch.Generator().manual_seed(2)
    pairs = [{"student": "s1", "teacher": "t1"}, {"student": "s2", "teacher": "t2"}]
    sf = {"s1": conv_features(g, 3, 4), "s2": conv_features(g, 6, 2)}
    # Different channel counts are fine: attention maps are per position.
    tf = {"t1": conv_features(g, 8, 4), "t2": conv_features(g, 16, 2)}
    s, t = torch.randn(4, 10, generator=g).double(), torch.randn(4, 10, generator=g).double()
    y = torch.tensor([0, 1, 2, -1])
    method = build_method(
        {"method": "at", "method_params": {"pairs": pairs, "at_weight": 1000.0}, **DISTILL}
    )
    method.build(sf, tf)
    ours = method.loss(Outputs(s, sf), Outputs(t, tf), y, temperature=4.0)
    at_sum = 0.0
    for p in pairs:
        a_s, a_t = sf[p["student"]].numpy(), tf[p["teacher"]].numpy()
        per_example = [
            float(((at_map(a_s[n]) - at_map(a_t[n])) ** 2).mean()) for n in range(len(a_s))
        ]
        at_sum += sum(per_example) / len(per_example)
    hinton = kd_loss(s, t, y, temperature=4.0, kd_weight=0.9, ce_weight=0.1).item()
    assert ours.item() == pytest.approx(hinton + 1000.0 / 2 * at_sum, rel=1e-9)


def test_attention_transfer_pools_maps_of_different_sizes() -> None:
    g = torch.Generator().manual_seed(4)
    pairs = [{"student": "s", "teacher": "t"}]
    sf, tf = {"s": conv_features(g, 3, 8)}, {"t": conv_features(g, 5, 4)}
    method = build_method(
        {"method": "at", "method_params": {"pairs": pairs, "at_weight": 1.0}, **DISTILL}
    )
    method.build(sf, tf)
    logits = torch.zeros(4, 3, dtype=torch.float64)
    loss = method.loss(
        Outputs(logits, sf), Outputs(logits, tf), torch.zeros(4, dtype=torch.long), temperature=1.0
    )
    assert torch.isfinite(loss)


def test_kd_is_hinton() -> None:
    g = torch.Generator().manual_seed(5)
    s, t = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    y = torch.randint(0, 4, (8,), generator=g)
    method = build_method({"method": "kd", "method_params": {}, **DISTILL})
    expected = kd_loss(s, t, y, temperature=3.0, kd_weight=0.9, ce_weight=0.1)
    assert torch.equal(method.loss(Outputs(s), Outputs(t), y, temperature=3.0), expected)


def test_only_fitnets_has_learnable_parts() -> None:
    g = torch.Generator().manual_seed(6)
    feats = {"x": conv_features(g, 2, 2).float()}
    pair = [{"student": "x", "teacher": "x"}]
    params = {
        "dkd": {"alpha": 1.0, "beta": 8.0},
        "reverse_kl": {},
        "jsd": {"beta": 0.5},
        "seqkd": {"prompt_bytes": 16, "sample_temperature": 1.0},
        "fitnets": {"hints": pair, "hint_weight": 1.0},
        "at": {"pairs": pair, "at_weight": 1000.0},
        "distilbert": {"cos_weight": 1.0},
    }
    # distilbert reads a classifier's last hidden states (and which tokens are real).
    states = {"hidden": torch.randn(2, 3, 4, generator=g), "attention_mask": torch.ones(2, 3)}
    for name in METHODS.names():  # the others take no parameters
        method = build_method({"method": name, "method_params": params.get(name, {}), **DISTILL})
        method.build(*((states, states) if name == "distilbert" else (feats, feats)))
        learnable = sum(p.numel() for p in method.parameters())
        assert (learnable > 0) == (name == "fitnets"), name
        assert isinstance(method, nn.Module)


def _divergence_case():  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(7)
    s = torch.randn(6, 5, generator=g, dtype=torch.float64)
    t = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    y = torch.tensor([0, 4, -1, 2, -1, 1])
    return s, t, y


def _method_loss(name: str, s, t, y, **params):  # type: ignore[no-untyped-def]
    method = build_method({"method": name, "method_params": params, **DISTILL}).double()
    return method.loss(Outputs(s), Outputs(t), y, temperature=2.0).item()


def test_reverse_kl_matches_minillm() -> None:
    s, t, y = _divergence_case()
    ours = _method_loss("reverse_kl", s, t, y)
    rows = [
        _kl(_softmax(si / 2.0), _softmax(ti / 2.0))
        for si, ti in zip(s.numpy(), t.numpy(), strict=True)
    ]
    expected = 0.9 * 4.0 * sum(rows) / len(rows) + 0.1 * _ce(s.numpy(), y.numpy())
    assert ours == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_jsd_matches_gkd(beta: float) -> None:
    """Agarwal et al. 2024: beta KL(p_t || M) + (1 - beta) KL(p_s || M), M = beta p_t +
    (1 - beta) p_s; forward KL at beta 0 and reverse KL at beta 1."""
    s, t, y = _divergence_case()
    ours = _method_loss("jsd", s, t, y, beta=beta)
    rows = []
    for si, ti in zip(s.numpy(), t.numpy(), strict=True):
        ps, pt = _softmax(si / 2.0), _softmax(ti / 2.0)
        if beta == 0:
            rows.append(_kl(pt, ps))
        elif beta == 1:
            rows.append(_kl(ps, pt))
        else:
            m = beta * pt + (1 - beta) * ps
            rows.append(beta * _kl(pt, m) + (1 - beta) * _kl(ps, m))
    expected = 0.9 * 4.0 * sum(rows) / len(rows) + 0.1 * _ce(s.numpy(), y.numpy())
    assert ours == pytest.approx(expected, rel=1e-9)
    if beta == 0:  # forward KL: Hinton's KD
        assert ours == pytest.approx(_method_loss("kd", s, t, y), rel=1e-9)


def _top_k_case(k: int = 5) -> tuple[torch.Tensor, TopKRows, torch.Tensor]:
    """A float64 student and a teacher kept as top-k rows (the store's form: k logits, their
    classes, the even tail's logit), as a causal LM's tokens are."""
    g = torch.Generator().manual_seed(11)
    rows, classes = 30, 40
    s = torch.randn(rows, classes, generator=g, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(rows, classes, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, classes, (rows,), generator=g)
    return s, top_k_rows(teacher, k), labels


@pytest.mark.parametrize(
    ("name", "params"),
    [("kd", {}), ("reverse_kl", {})] + [("jsd", {"beta": b}) for b in (0.0, 0.1, 0.5, 0.9, 1.0)],
)
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_top_k_teacher_gives_the_dense_loss_and_gradient_without_building_it(
    name: str, params: dict[str, float], temperature: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kd, reverse_kl and jsd from top-k rows equal the same method on the full logits they
    stand for (the k stored probabilities, the leftover shared like the student's own tail),
    loss and gradient, in float64; the dense rows are never built."""
    s, top, labels = _top_k_case()
    method = build_method({"method": name, "method_params": params, **DISTILL}).double()
    full = with_students_tail(top, s, temperature)
    reference = method.loss(Outputs(s), Outputs(full), labels, temperature=temperature)
    (reference_grad,) = torch.autograd.grad(reference, s)

    def never(self: TopKRows) -> torch.Tensor:
        raise AssertionError("the dense teacher was built")

    monkeypatch.setattr(TopKRows, "dense", never)
    ours = method.loss(Outputs(s), Outputs(top), labels, temperature=temperature)
    (ours_grad,) = torch.autograd.grad(ours, s)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-12)
    assert torch.allclose(ours_grad, reference_grad, rtol=1e-10, atol=1e-14)


def _standardised(v: np.ndarray) -> np.ndarray:
    """Sun et al. 2024's z-score: mean and unbiased std over the classes, std + 1e-7."""
    return (v - v.mean()) / (v.std(ddof=1) + 1e-7)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_lskd_matches_logit_standardisation(temperature: float) -> None:
    s, t, y = _divergence_case()
    t = t * 5 + 3  # a teacher on another scale and offset: standardisation removes both
    method = build_method({"method": "lskd", "method_params": {}, **DISTILL}).double()
    ours = method.loss(Outputs(s), Outputs(t), y, temperature=temperature).item()
    rows = [
        _kl(_softmax(_standardised(ti) / temperature), _softmax(_standardised(si) / temperature))
        for si, ti in zip(s.numpy(), t.numpy(), strict=True)
    ]
    kd = 0.9 * temperature**2 * sum(rows) / len(rows)
    expected = kd + 0.1 * _ce(s.numpy(), y.numpy())  # CE on the raw student logits
    assert ours == pytest.approx(expected, rel=1e-9)


def test_lskd_ignores_the_teachers_scale_and_offset_where_kd_does_not() -> None:
    s, t, y = _divergence_case()
    lskd = [_method_loss("lskd", s, t * k + c, y) for k, c in [(1, 0), (3, -2), (0.2, 7)]]
    kd = [_method_loss("kd", s, t * k + c, y) for k, c in [(1, 0), (3, -2), (0.2, 7)]]
    assert lskd == pytest.approx([lskd[0]] * 3, rel=1e-6)
    assert kd[1] != pytest.approx(kd[0], rel=1e-3)


def test_distilbert_adds_the_cosine_of_real_tokens_hidden_states() -> None:
    """Sanh et al. 2019: KD + CE plus cos_weight * mean over unpadded tokens of
    1 - cos(h_s, h_t) (CosineEmbeddingLoss with target 1), in float64 here."""
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    y = torch.tensor([0, 3, 1])
    h_s, h_t = torch.randn(3, 5, 8, generator=g), torch.randn(3, 5, 8, generator=g)
    mask = torch.ones(3, 5)
    mask[0, 3:] = 0  # padding: never compared
    mask[2, 1:] = 0
    reference = []
    for b in range(3):
        for i in range(5):
            if mask[b, i]:
                u, v = h_s[b, i].double().numpy(), h_t[b, i].double().numpy()
                reference.append(1 - u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
    method = build_method({"method": "distilbert", "method_params": {"cos_weight": 2.5}, **DISTILL})
    assert method.student_layers() == ["hidden", "attention_mask"]
    assert method.teacher_layers() == ["hidden"]
    loss = method.loss(
        Outputs(s, {"hidden": h_s, "attention_mask": mask}),
        Outputs(t, {"hidden": h_t}),
        y,
        temperature=2.0,
    )
    hinton = kd_loss(s, t, y, temperature=2.0, **DISTILL)
    expected = hinton.item() + 2.5 * float(np.mean(reference))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="same width"):
        method.build({"hidden": h_s, "attention_mask": mask}, {"hidden": h_t[..., :4]})
