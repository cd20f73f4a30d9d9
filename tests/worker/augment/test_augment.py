"""Augmented views: the same (seed, epoch, position) always gives the same view, whatever the
batch; each kind does what it says."""

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from worker.augment import ViewKey, build_augmentation
from worker.augment.counters import normal, uniform
from worker.data import DatasetMismatch

ONE = torch.tensor(1.0)


def key(positions: list[int] | torch.Tensor, epoch: int = 0, seed: int = 7) -> ViewKey:
    return ViewKey(seed, epoch, torch.as_tensor(positions))


def images(n: int = 8) -> torch.Tensor:
    return torch.arange(n * 3 * 6 * 6, dtype=torch.float32).reshape(n, 3, 6, 6)


@pytest.mark.parametrize(
    ("spec", "x"),
    [
        ({"kind": "image", "crop_padding": 2, "flip": True}, images()),
        ({"kind": "signal", "shift": 3, "noise": 0.1}, torch.randn(8, 40)),
        ({"kind": "tabular", "noise": 0.1}, torch.randn(8, 5)),
    ],
)
def test_a_view_depends_on_its_seed_epoch_and_position_only(spec: dict, x: torch.Tensor) -> None:
    augment = build_augmentation(spec, tuple(x.shape[1:]), ONE)
    assert augment is not None
    views = augment(x, key(range(8)))
    assert torch.equal(views, augment(x, key(range(8))))  # replayed: bit-identical
    # The same examples at the same positions in another batch: the same views.
    assert torch.equal(views[4:], augment(x[4:], key(range(4, 8))))
    assert not torch.equal(views, augment(x, key(range(8), epoch=1)))
    assert not torch.equal(views, augment(x, key(range(8), seed=8)))


def test_image_views_are_flipped_crops_of_the_padded_image() -> None:
    x = images()
    augment = build_augmentation({"kind": "image", "crop_padding": 2, "flip": True}, (3, 6, 6), ONE)
    assert augment is not None
    views = augment(x, key(range(8)))
    padded = F.pad(x, (2, 2, 2, 2))
    flips = 0
    for view, source in zip(views, padded, strict=True):
        windows = [
            (source[:, dy : dy + 6, dx : dx + 6], flipped)
            for dy in range(5)
            for dx in range(5)
            for flipped in (False, True)
        ]
        matches = [f for w, f in windows if torch.equal(view, w.flip(-1) if f else w)]
        assert matches, "a view is a (flipped) crop of its padded image"
        flips += matches[0]
    assert 0 < flips < 8


def test_signal_views_are_shifted_with_their_edges_repeated() -> None:
    x = torch.randn(16, 40)
    augment = build_augmentation({"kind": "signal", "shift": 3, "noise": 0.0}, (40,), ONE)
    assert augment is not None
    views = augment(x, key(range(16)))
    padded = F.pad(x[:, None], (3, 3), mode="replicate")[:, 0]
    shifts = set()
    for view, source in zip(views, padded, strict=True):
        (offset,) = [o for o in range(7) if torch.equal(view, source[o : o + 40])][:1]
        shifts.add(offset)
    assert len(shifts) > 2


@pytest.mark.parametrize("kind", ["signal", "tabular"])
def test_noise_has_the_asked_scale(kind: str) -> None:
    x = torch.zeros(256, 40)
    spec = {"kind": kind, "noise": 0.5} | ({"shift": 0} if kind == "signal" else {})
    augment = build_augmentation(spec, (40,), torch.tensor(2.0))
    assert augment is not None
    noise = augment(x, key(range(256)))
    assert abs(noise.mean().item()) < 0.02
    assert noise.std().item() == pytest.approx(1.0, rel=0.03)  # 0.5 x the data's std of 2


def test_counters_give_uniform_and_normal_numbers() -> None:
    counters = np.arange(200_000)
    u = uniform(1, 2, counters, 0)
    assert u.min() >= 0 and u.max() < 1
    assert np.histogram(u, bins=10, range=(0, 1))[0] == pytest.approx([20_000] * 10, rel=0.03)
    z = normal(1, 2, counters, 0)
    assert abs(z.mean()) < 0.01 and z.std() == pytest.approx(1.0, rel=0.01)
    assert not np.array_equal(uniform(1, 2, counters, 0), uniform(1, 2, counters, 1))


@pytest.mark.parametrize(
    ("kind", "shape"), [("image", (40,)), ("image", (2, 3, 4, 5)), ("signal", (3, 8, 8))]
)
def test_a_kind_that_does_not_suit_the_inputs_is_refused(kind: str, shape: tuple) -> None:
    with pytest.raises(DatasetMismatch, match=kind) as info:
        build_augmentation(
            {"kind": kind, "crop_padding": 1, "flip": True, "shift": 1, "noise": 0.1}, shape, ONE
        )
    assert info.value.param == "dataset.augment"


def test_no_spec_no_augmentation() -> None:
    assert build_augmentation(None, (40,), ONE) is None


def mixing(mixup: float, cutmix: float) -> Any:
    spec = {"kind": "image", "crop_padding": 0, "flip": False, "mixup": mixup, "cutmix": cutmix}
    augment = build_augmentation(spec, (3, 6, 6), ONE)
    assert augment is not None and augment.mixes()
    return augment


def test_mixup_blends_each_view_with_its_partner_by_its_share() -> None:
    x, partner = images(), images().flip(0)
    views, lam = mixing(0.4, 0.0).mix(x, partner, key(range(8)))
    assert ((lam >= 0) & (lam <= 1)).all() and lam.std() > 0
    expected = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * partner
    assert torch.allclose(views, expected)
    again, lam_again = mixing(0.4, 0.0).mix(x, partner, key(range(8)))
    assert torch.equal(views, again) and torch.equal(lam, lam_again)


def test_cutmix_pastes_a_box_of_the_partner_and_says_how_much() -> None:
    x, partner = torch.zeros(8, 3, 6, 6), torch.ones(8, 3, 6, 6)
    views, lam = mixing(0.0, 1.0).mix(x, partner, key(range(8)))
    pasted = views.mean(dim=(1, 2, 3))  # the share of the partner's pixels
    assert torch.allclose(1 - pasted, lam)
    assert set(views.unique().tolist()) <= {0.0, 1.0}


def test_with_both_each_view_is_blended_or_cut() -> None:
    x, partner = torch.zeros(64, 3, 6, 6), torch.ones(64, 3, 6, 6)
    views, _ = mixing(1.0, 1.0).mix(x, partner, key(range(64)))
    cut = [bool(set(v.unique().tolist()) <= {0.0, 1.0}) for v in views]
    assert 0 < sum(cut) < 64
