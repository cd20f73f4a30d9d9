"""The training loop: learns, checkpoints every epoch, resumes exactly, stops when asked."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from distillery.types import TrainSettings
from worker.learning_tasks.classification import accuracy_and_loss
from worker.models import build_model
from worker.train import (
    Interrupted,
    LoopHooks,
    TrainingDiverged,
    epoch_order,
    train,
)

# A resolved spec part, as the pipeline passes it (every field filled in).
SETTINGS = TrainSettings(epochs=4, batch_size=16, optimizer="adam", lr=0.01).model_dump()


def blobs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (240,), generator=g)
    x = torch.randn(240, 6, generator=g) * 0.5 + nn.functional.one_hot(y, 6).float() * 3
    return x, y


def fit(path: Path, hooks: LoopHooks, settings: dict = SETTINGS, **kwargs) -> nn.Module:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    x, y = blobs()
    model = build_model("mlp", {"hidden": [16], "dropout": 0.1}, (6,), 3)
    train(
        model,
        settings=settings,
        num_examples=len(x),
        batch_loss=lambda m, b: nn.functional.cross_entropy(m(x[b.index]), y[b.index]),
        validate=lambda m: dict(
            zip(("val_accuracy", "val_loss"), accuracy_and_loss(m, x, y), strict=True)
        ),
        checkpoint_path=path,
        hooks=hooks,
        seed=0,
        **kwargs,
    )
    return model


def test_learns_and_records_every_epoch(tmp_path: Path) -> None:
    epochs: list[tuple[int, dict]] = []
    model = fit(
        tmp_path / "a.ckpt",
        LoopHooks(check=lambda: None, on_epoch=lambda e, v: epochs.append((e, v))),
    )
    assert [e for e, _ in epochs] == [1, 2, 3, 4]
    last = epochs[-1][1]
    assert last["val_accuracy"] > 0.95
    assert {"train_loss", "val_loss", "lr", "samples_per_second"} <= set(last)
    assert (tmp_path / "a.ckpt").exists()
    x, y = blobs()
    assert accuracy_and_loss(model, x, y)[0] > 0.95


class Crash(Exception):
    pass


def test_resume_after_a_crash_gives_the_same_weights(tmp_path: Path) -> None:
    straight = fit(
        tmp_path / "straight.ckpt", LoopHooks(check=lambda: None, on_epoch=lambda e, v: None)
    )

    def crash_after_two(epoch: int, _values: dict) -> None:
        if epoch == 2:
            raise Crash()

    with pytest.raises(Crash):
        fit(tmp_path / "resumed.ckpt", LoopHooks(check=lambda: None, on_epoch=crash_after_two))
    seen: list[int] = []
    resumed = fit(
        tmp_path / "resumed.ckpt",
        LoopHooks(check=lambda: None, on_epoch=lambda e, v: seen.append(e)),
    )
    # The crash came after epoch 2 was recorded but before its checkpoint: epoch 2 is redone.
    assert seen == [2, 3, 4]
    for (name, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_check_stops_the_loop_within_check_every_steps(tmp_path: Path) -> None:
    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Crash()

    with pytest.raises(Crash):
        fit(tmp_path / "c.ckpt", LoopHooks(check=check, on_epoch=lambda e, v: None, check_every=5))
    assert not (tmp_path / "c.ckpt").exists()  # stopped at step 10, inside the first epoch


def test_steps_per_epoch_cycles_through_the_data(tmp_path: Path) -> None:
    order = epoch_order(10, 25, seed=0, epoch=0)
    assert len(order) == 25
    assert sorted(order[:10].tolist()) == list(range(10))
    assert sorted(order[10:20].tolist()) == list(range(10))
    seen: list[dict] = []
    fit(
        tmp_path / "s.ckpt",
        LoopHooks(check=lambda: None, on_epoch=lambda e, v: seen.append(v)),
        {**SETTINGS, "epochs": 1},
        steps_per_epoch=40,
    )
    # 40 steps of 16 examples, not one pass over the 240 examples.
    assert seen[0]["samples_per_second"] * seen[0]["epoch_seconds"] == pytest.approx(640, rel=1e-3)


def test_a_diverging_loss_stops_training_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingDiverged, match="lower lr"):
        fit(
            tmp_path / "d.ckpt",
            LoopHooks(check=lambda: None, on_epoch=lambda e, v: None),
            {**SETTINGS, "lr": 1e30, "optimizer": "sgd"},
        )


def test_a_pause_mid_epoch_resumes_at_the_same_step_with_the_same_weights(
    tmp_path: Path,
) -> None:
    straight_epochs: list[tuple[int, dict]] = []
    straight = fit(
        tmp_path / "straight.ckpt",
        LoopHooks(check=lambda: None, on_epoch=lambda e, v: straight_epochs.append((e, v))),
    )
    checks = 0

    def pause_in_epoch_two() -> None:  # checks: steps 4, 8, 12, end of epoch 1; steps 4, 8
        nonlocal checks
        checks += 1
        if checks == 6:
            raise Interrupted()

    recorded: list[tuple[int, dict]] = []
    with pytest.raises(Interrupted):
        fit(
            tmp_path / "paused.ckpt",
            LoopHooks(
                check=pause_in_epoch_two,
                on_epoch=lambda e, v: recorded.append((e, v)),
                check_every=4,
            ),
        )
    assert [e for e, _ in recorded] == [1]
    state = torch.load(tmp_path / "paused.ckpt", weights_only=True)
    assert (state["epoch"], state["step"]) == (1, 8)

    resumed = fit(
        tmp_path / "paused.ckpt",
        LoopHooks(check=lambda: None, on_epoch=lambda e, v: recorded.append((e, v))),
    )
    assert [e for e, _ in recorded] == [1, 2, 3, 4]  # each epoch once; none redone
    for (name, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    # The paused epoch's loss counts the batches from before the pause too.
    assert recorded[1][1]["train_loss"] == pytest.approx(straight_epochs[1][1]["train_loss"])


def test_each_epoch_records_the_lr_it_started_with(tmp_path: Path) -> None:
    recorded: list[dict] = []
    fit(
        tmp_path / "lr.ckpt",
        LoopHooks(check=lambda: None, on_epoch=lambda e, v: recorded.append(v)),
        {**SETTINGS, "lr_schedule": "cosine"},
    )
    lrs = [values["lr"] for values in recorded]
    assert lrs[0] == SETTINGS["lr"]  # epoch 1 trained from the initial lr, not epoch 2's
    assert lrs[1] == pytest.approx(SETTINGS["lr"] * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] > 0
