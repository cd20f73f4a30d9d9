"""How training uses the device. CUDA is mocked (no GPU here; the device tool runs the real
checks); CPU autocast, the loss scaler and channels_last run for real on the CPU."""

from pathlib import Path

import pytest
import torch
from torch import nn

from app.settings import Settings
from tests.worker.test_train import SETTINGS, blobs
from worker import precision
from worker.learning_tasks.classification import accuracy_and_loss
from worker.models import build_model
from worker.precision import Precision, plan_precision, set_worker_threads
from worker.train import LoopHooks, train

CPU = torch.device("cpu")
CUDA = torch.device("cuda")
NO_HOOKS = LoopHooks(check=lambda: None, on_epoch=lambda _e, _v: None)


def test_a_job_trains_in_float32_on_every_device_unless_its_spec_asks_for_mixed() -> None:
    assert plan_precision(Settings(), CPU, (3, 32, 32)) == Precision(CPU)
    assert plan_precision(Settings(), CUDA, (3, 32, 32)) == Precision(CUDA)
    assert plan_precision(Settings(), CPU, (40,), "mixed") == Precision(CPU, torch.bfloat16)


@pytest.mark.parametrize(("bf16", "dtype"), [(True, torch.bfloat16), (False, torch.float16)])
def test_mixed_on_cuda_takes_bf16_where_it_can_and_fp16_with_a_scaler_otherwise(
    monkeypatch: pytest.MonkeyPatch, bf16: bool, dtype: torch.dtype
) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    plan = plan_precision(Settings(), CUDA, (3, 32, 32), "mixed")
    assert plan.autocast == dtype and plan.scaled == (not bf16)
    assert plan.channels_last  # a conv net on images
    assert not plan_precision(Settings(), CUDA, (40,), "mixed").channels_last
    assert plan_precision(Settings(torch_compile=True), CUDA, (40,), "mixed").compile


def test_cuda_copies_go_through_pinned_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class Tracked(torch.Tensor):
        def pin_memory(self, *args: object, **kwargs: object) -> torch.Tensor:  # type: ignore[override]
            calls.append("pin")
            return self

        def to(self, *args: object, **kwargs: object) -> torch.Tensor:  # type: ignore[override]
            calls.append(f"to non_blocking={kwargs.get('non_blocking')}")
            return torch.Tensor(self)

    precision.pinned(torch.zeros(2).as_subclass(Tracked), CUDA)
    assert calls == ["pin", "to non_blocking=True"]


def fit(tmp_path: Path, plan: Precision, model: nn.Module | None = None) -> nn.Module:
    torch.manual_seed(0)
    x, y = blobs()
    model = model or build_model("mlp", {"hidden": [16]}, (6,), 3)
    train(
        model,
        settings=SETTINGS,
        num_examples=len(x),
        batch_loss=lambda m, b: nn.functional.cross_entropy(m(x[b.index]), y[b.index]),
        validate=lambda m: {"val_accuracy": accuracy_and_loss(m, x, y)[0]},
        checkpoint_path=tmp_path / "a.ckpt",
        hooks=NO_HOOKS,
        seed=0,
        precision=plan,
    )
    return model


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_trains_and_checkpoints_its_scaler(
    tmp_path: Path, dtype: torch.dtype
) -> None:
    model = fit(tmp_path, Precision(CPU, autocast=dtype))
    x, y = blobs()
    assert accuracy_and_loss(model, x, y)[0] > 0.9
    state = torch.load(tmp_path / "a.ckpt", weights_only=True)
    assert "scaler" in state
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights


def test_channels_last_conv_nets_train_the_same(tmp_path: Path) -> None:
    plan = Precision(CPU, channels_last=True)
    model = build_model("cnn2d", {"channels": [4]}, (1, 8, 8), 3)
    plan.prepare(model)
    conv = model.net.features[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    batch = plan.inputs(torch.randn(2, 1, 8, 8))
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert plan.inputs(torch.randn(2, 6)).shape == (2, 6)
    plan.release(model)
    assert conv.weight.is_contiguous()


def test_training_in_channels_last_leaves_the_plain_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 1, 8, 8)
    y = torch.randint(0, 3, (64,))
    model = build_model("cnn2d", {"channels": [4]}, (1, 8, 8), 3)
    plan = Precision(CPU, channels_last=True)
    train(
        model,
        settings=SETTINGS,
        num_examples=64,
        batch_loss=lambda m, b: nn.functional.cross_entropy(m(plan.inputs(x[b.index])), y[b.index]),
        validate=lambda m: {"val_accuracy": accuracy_and_loss(m, x, y)[0]},
        checkpoint_path=tmp_path / "a.ckpt",
        hooks=NO_HOOKS,
        seed=0,
        precision=plan,
    )
    assert all(p.is_contiguous() for p in model.parameters())


def test_a_worker_sets_its_thread_count() -> None:
    before = torch.get_num_threads()
    try:
        set_worker_threads(Settings(torch_threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
