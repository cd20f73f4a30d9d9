"""PreparedData builds the distillation inputs and labels once, however often they are read."""

import torch

from worker.data import prepare

SPEC = {
    "name": "synthetic",
    "options": {"shape": [5], "num_classes": 3, "num_samples": 200},
    "val_fraction": 0.25,
    "transfer": {"name": "synthetic", "options": {"shape": [5], "num_samples": 80, "seed": 7}},
}


def test_the_distill_inputs_and_labels_are_built_once() -> None:
    data = prepare(SPEC, seed=0)
    x, y = data.distill, data.y_distill
    assert data.distill is x and data.y_distill is y  # no re-concatenation per access
    n_train = len(data.train)
    assert (len(x), len(y)) == (n_train + len(data.transfer), n_train + len(data.transfer))
    assert torch.equal(y[:n_train], data.y_train)
    assert (y[n_train:] == -1).all()
    assert torch.equal(
        x.head(len(x)), torch.cat([data.train.head(n_train), data.transfer.head(80)])
    )
