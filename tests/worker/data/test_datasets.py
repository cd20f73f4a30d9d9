"""Builtin datasets load offline and are split reproducibly."""

import pytest
import torch

from distillery.types import catalog
from worker.data import load_dataset, prepare
from worker.data.prepare import DatasetMismatch


def test_digits_is_the_sklearn_set_with_a_fixed_test_split() -> None:
    raw = load_dataset("digits", {"layout": "flat"})
    assert raw.x.shape[1:] == (64,) and raw.x_test.shape == (360, 64)
    assert len(raw.x) + len(raw.x_test) == 1797
    assert raw.x.max() == 16.0
    image = load_dataset("digits", {"layout": "image"})
    assert image.x.shape[1:] == (1, 8, 8)


def test_mnist1d_is_generated_deterministically() -> None:
    a = load_dataset("mnist1d", {"num_samples": 1000, "seed": 3})
    b = load_dataset("mnist1d", {"num_samples": 1000, "seed": 3})
    assert a.x.shape == (800, 40) and a.x_test.shape == (200, 40)
    assert (a.x == b.x).all()
    assert set(a.y.tolist()) == set(range(10))


def test_synthetic_has_the_requested_shape() -> None:
    options = catalog.resolve_params(
        catalog.DATASETS, "synthetic", {"shape": [3, 8, 8], "num_classes": 4}, "dataset"
    )
    raw = load_dataset("synthetic", options)
    assert raw.x.shape[1:] == (3, 8, 8)
    assert raw.num_classes == 4


def test_prepare_splits_train_and_val_by_seed_and_adds_the_transfer_set() -> None:
    spec = {
        "name": "mnist1d",
        "options": {"num_samples": 1000, "seed": 1},
        "val_fraction": 0.25,
        "transfer": {"name": "mnist1d", "options": {"num_samples": 500, "seed": 2}},
    }
    data = prepare(spec, seed=0)
    assert (len(data.train), len(data.val), len(data.test)) == (600, 200, 200)
    assert len(data.transfer) == 500
    assert len(data.distill) == 1100
    assert (data.y_distill[600:] == -1).all()
    assert data.fingerprint() == prepare(spec, seed=0).fingerprint()
    other = prepare(spec, seed=1)
    assert not torch.equal(other.train.head(600), data.train.head(600))
    assert other.fingerprint() != data.fingerprint()


def test_transfer_examples_that_are_val_or_test_examples_are_dropped() -> None:
    same = {"name": "mnist1d", "options": {"num_samples": 1000, "seed": 1}}
    data = prepare({**same, "val_fraction": 0.25, "transfer": same}, seed=0)
    # 1,000 transfer examples less the 200 test and 200 validation ones.
    assert data.transfer_dropped == 400
    assert len(data.transfer) == 600


def test_transfer_set_of_another_shape_is_refused() -> None:
    spec = {
        "name": "digits",
        "options": {"layout": "flat"},
        "val_fraction": 0.1,
        "transfer": {"name": "mnist1d", "options": {"num_samples": 100, "seed": 2}},
    }
    with pytest.raises(DatasetMismatch) as info:
        prepare(spec, seed=0)
    assert info.value.param == "dataset.transfer"
