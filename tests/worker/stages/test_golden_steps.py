"""Golden steps: a real job's distill and baseline stages (run in-process on the CPU, float32
or `"precision": "mixed"`) leave the weights that a reference loop written here from DESIGN
section 5 reaches from the same initial weights, the same batches (worker.train.epoch_order,
an input), the same teacher logits (the soft-label store's file as stored, or the job's own
trained teacher online) and the same optimiser (torch.optim.Adam with the spec's lr, weight
decay and lr schedule).

The reference is plain torch: it calls neither the training loop nor worker.kd, so a change
to how the service samples, steps, schedules the lr, scales the KD term or masks the
transfer set's CE shows here as different weights, and distillation cannot drift again from
the loop the baseline (and the report's kd_gain) is measured against."""

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from app.models import JobStatus
from app.settings import Settings
from tests.worker.test_pipeline import load, submit
from worker import lifecycle
from worker import pipeline as pipeline_module
from worker.data import PreparedData, prepare
from worker.data.prepare import Examples
from worker.models import build_model, feature_modules
from worker.train import epoch_order

MNIST1D = {"name": "mnist1d", "options": {"num_samples": 100}}
# Another draw of MNIST-1D, unlabelled: the teacher's logits are all the student learns of it.
TRANSFER = {"name": "mnist1d", "options": {"num_samples": 100, "seed": 7}}
TEACHER = {"arch": "cnn1d", "params": {"channels": 16}, "train": {"epochs": 1, "batch_size": 32}}
STUDENT = {"arch": "cnn1d", "params": {"channels": 4}}
DISTILL = {"epochs": 2, "batch_size": 32, "lr": 0.003}
# Layer pairs of the same length (attention maps compared as they are, no pooling).
AT_PAIRS = [{"student": "conv2", "teacher": "conv2"}, {"student": "conv3", "teacher": "conv3"}]

CASES: dict[str, dict[str, Any]] = {
    "kd": {"dataset": MNIST1D, "distill": {**DISTILL, "method": "kd"}},
    "kd-transfer-set": {
        "dataset": {**MNIST1D, "transfer": TRANSFER},
        # A heavier CE term, so the labelled rows' mask counts; and a cosine lr.
        "distill": {
            **DISTILL,
            "method": "kd",
            "kd_weight": 0.7,
            "ce_weight": 0.3,
            "lr_schedule": "cosine",
        },
    },
    # `"precision": "mixed"`: the forward under bf16 autocast (on the CPU here as on a GPU),
    # the loss in float32 against the teacher's logits as stored, never rounded to bf16.
    "kd-mixed": {"dataset": MNIST1D, "distill": {**DISTILL, "method": "kd"}, "precision": "mixed"},
    "at": {
        "dataset": MNIST1D,
        "distill": {**DISTILL, "method": "at", "method_params": {"pairs": AT_PAIRS}},
    },
}

# k, the optimiser steps of each case's distillation: 2 epochs of 72 train examples (3 batches
# of 32, the last one short) or of 72 + 100 transfer examples (6 batches).
STEPS = {"kd": 6, "kd-transfer-set": 12, "kd-mixed": 6, "at": 6}

# Both sides compute the same float32 values, up to the order of some ops (F.kl_div against a
# hand-written sum, a masked mean against a mean over the labelled rows); on x86-64 with
# torch 2.13 (CPU) they agree to the bit. The tolerance leaves room for another CPU or torch build
# summing in another order, and stays far below what a drift in the loop changes: each one
# tried (T instead of T^2, the next epoch's batches, CE averaged over the unlabelled rows
# too, at_weight for at_weight / 2, the cosine lr one step early, unstretched baseline
# epochs) moved some weight by 3e-3 to 3e-2.
ATOL, RTOL = 1e-5, 1e-4

# A batch's loss: (the model, its example indices) -> the loss.
BatchLoss = Callable[[nn.Module, torch.Tensor], torch.Tensor]


@pytest.fixture
def kept_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs keep their work folder when they succeed: the stages' weights are read there."""
    monkeypatch.setattr(pipeline_module, "remove_job_work", lambda *_args: 0)


@pytest.fixture
def on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs train on the CPU in float32 (on a GPU they would train under autocast)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


pytestmark = pytest.mark.usefixtures("kept_work", "on_the_cpu")


def run_job(settings: Settings, case: str, baseline: bool = False) -> tuple[dict[str, Any], Path]:
    """Run the case's job in-process to `succeeded`; its resolved spec and work folder."""
    spec = {
        **CASES[case],
        "teacher": TEACHER,
        "student": STUDENT,
        "baseline": baseline,
        "export": ["safetensors"],
    }
    job_id = submit(settings, spec)
    lifecycle.run(job_id, settings)
    job = load(settings, job_id)[0]
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job.spec, settings.work_root / "jobs" / job_id


# --- the reference -------------------------------------------------------------------------


def initial_student(spec: dict[str, Any], data: PreparedData) -> nn.Module:
    """The student as every training of it starts: the arch built under the job's seed."""
    torch.manual_seed(spec["seed"])
    part = spec["student"]
    return build_model(
        part["arch"], part["params"], data.input_shape, data.num_classes, data.mean, data.std
    )


def reference_steps(
    model: nn.Module,
    settings: dict[str, Any],
    *,
    seed: int,
    num_examples: int,
    epoch_length: int,
    batch_loss: BatchLoss,
) -> int:
    """Train `model` in place: each epoch takes epoch_order(num_examples, epoch_length, seed,
    epoch) in batches of the batch size (the last one may be short), one Adam step each, at
    lr x the schedule's factor of the step (0-based, of all the epochs' steps). Returns the
    number of steps taken."""
    epochs, batch_size, lr = settings["epochs"], settings["batch_size"], settings["lr"]
    total = epochs * math.ceil(epoch_length / batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=settings["weight_decay"])
    model.train()
    step = 0
    for epoch in range(epochs):
        order = epoch_order(num_examples, epoch_length, seed, epoch)
        for start in range(0, epoch_length, batch_size):
            factor = 1.0
            if settings["lr_schedule"] == "cosine":
                factor = 0.5 * (1 + math.cos(math.pi * step / total))
            for group in optimizer.param_groups:
                group["lr"] = lr * factor
            loss = batch_loss(model, order[start : start + batch_size])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
    return step


def hinton(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    distill: dict[str, Any],
) -> torch.Tensor:
    """DESIGN section 5: kd_weight T^2 sum_c p_t (log p_t - log p_s) / B, plus ce_weight x the
    mean cross-entropy over the labelled rows (label -1: a transfer example, KD term only)."""
    t = distill["temperature"]
    log_p_s = F.log_softmax(student / t, dim=1)
    log_p_t = F.log_softmax(teacher / t, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum() / len(student)
    loss = distill["kd_weight"] * t * t * kl
    labelled = labels >= 0
    if labelled.any():
        loss = loss + distill["ce_weight"] * F.cross_entropy(student[labelled], labels[labelled])
    return loss


def attention_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Zagoruyko & Komodakis 2017 (the authors' code): Q = mean_c A^2, flattened and
    L2-normalised; the mean over the batch and positions of (Q_s - Q_t)^2."""

    def attention(a: torch.Tensor) -> torch.Tensor:
        q = a.pow(2).mean(1).flatten(1)
        return q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)

    return (attention(student) - attention(teacher)).pow(2).mean()


class Taps:
    """The outputs of a zoo model's named feature layers at its last forward."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        self.outputs: dict[str, torch.Tensor] = {}
        for name in names:
            feature_modules(model)[name].register_forward_hook(self._keep(name))

    def _keep(self, name: str) -> Callable[[nn.Module, Any, torch.Tensor], None]:
        def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            self.outputs[name] = output

        return keep


def in_memory(examples: Examples) -> torch.Tensor:
    """A split's inputs, float32 (a tiny dataset is held in memory)."""
    assert examples.tensor is not None
    return examples.tensor


def trained_teacher(spec: dict[str, Any], data: PreparedData, work: Path) -> nn.Module:
    """The teacher the job trained (its pretraining stage's weights), in eval mode."""
    part = spec["teacher"]
    teacher = build_model(part["arch"], part["params"], data.input_shape, data.num_classes)
    teacher.load_state_dict(load_file(str(work / "teacher.safetensors")))
    return teacher.eval()


def stored_teacher_logits(settings: Settings, data: PreparedData) -> torch.Tensor:
    """The soft-label store's one entry, as stored: a float16 row per distillation example."""
    (entry,) = settings.soft_label_root.glob("*.npy")
    rows = np.load(entry)
    assert rows.dtype == np.float16 and rows.shape == (len(data.distill), data.num_classes)
    return torch.from_numpy(rows.astype(np.float32))


def distill_set(data: PreparedData) -> tuple[torch.Tensor, torch.Tensor]:
    """What distillation trains on: the train split, then the transfer set, whose examples
    are unlabelled (-1)."""
    x = torch.cat([in_memory(data.train), in_memory(data.transfer)])
    y = torch.cat([data.y_train, torch.full((len(data.transfer),), -1)])
    return x, y


def kd_loss_of(
    distill: dict[str, Any], data: PreparedData, settings: Settings, mixed: bool = False
) -> BatchLoss:
    """`kd`: a batch's Hinton loss against the teacher's logits from the store; `mixed`: the
    student's forward under bf16 autocast, the loss of its logits in float32."""
    x, y = distill_set(data)
    logits = stored_teacher_logits(settings, data)

    def loss(m: nn.Module, index: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
            s = m(x[index])
        return hinton(s.float(), logits[index], y[index], distill)

    return loss


def at_loss_of(
    distill: dict[str, Any], data: PreparedData, teacher: nn.Module, student: nn.Module
) -> BatchLoss:
    """`at`: a batch's Hinton loss against the teacher run on the batch, plus at_weight / 2
    x the attention distance of each layer pair (the student's layers tapped on `student`)."""
    x, y = distill_set(data)
    pairs, at_weight = distill["method_params"]["pairs"], distill["method_params"]["at_weight"]
    teacher_taps = Taps(teacher, [p["teacher"] for p in pairs])
    student_taps = Taps(student, [p["student"] for p in pairs])

    def loss(m: nn.Module, index: torch.Tensor) -> torch.Tensor:
        s = m(x[index])
        with torch.no_grad():
            t = teacher(x[index])
        distances = [
            attention_distance(
                student_taps.outputs[p["student"]], teacher_taps.outputs[p["teacher"]]
            )
            for p in pairs
        ]
        return hinton(s, t, y[index], distill) + at_weight / 2 * sum(distances)

    return loss


def hard_label_loss(data: PreparedData) -> BatchLoss:
    """The baseline's loss: the mean cross-entropy of a batch of labelled train examples."""
    x, y = in_memory(data.train), data.y_train

    def loss(m: nn.Module, index: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(m(x[index]), y[index])

    return loss


def assert_same_weights(service: dict[str, torch.Tensor], reference: nn.Module) -> None:
    expected = reference.state_dict()
    assert service.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(service[name], value, atol=ATOL, rtol=RTOL, msg=name)


# --- the tests -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_the_distill_stage_takes_the_reference_steps(sqlite_settings: Settings, case: str) -> None:
    spec, work = run_job(sqlite_settings, case)
    data = prepare(spec["dataset"], spec["seed"], sqlite_settings)
    distill = spec["distill"]
    student = initial_student(spec, data)
    if distill["method"] == "kd":
        loss = kd_loss_of(distill, data, sqlite_settings, spec["precision"] == "mixed")
    else:
        loss = at_loss_of(distill, data, trained_teacher(spec, data, work), student)
    examples = len(data.train) + len(data.transfer)
    steps = reference_steps(
        student,
        distill,
        seed=spec["seed"],
        num_examples=examples,
        epoch_length=examples,  # an epoch is one pass over them
        batch_loss=loss,
    )
    assert steps == STEPS[case]
    assert_same_weights(load_file(str(work / "student.safetensors")), student)


def test_the_baseline_stage_takes_the_reference_steps(sqlite_settings: Settings) -> None:
    """From the student's initial weights, on the train split's hard labels, with as many
    steps as distillation takes over the train split and the transfer set: its epochs are
    stretched (more batches than one pass over the train split makes)."""
    spec, work = run_job(sqlite_settings, "kd-transfer-set", baseline=True)
    data = prepare(spec["dataset"], spec["seed"], sqlite_settings)
    distill = spec["distill"]
    baseline = initial_student(spec, data)
    distill_steps = math.ceil((len(data.train) + len(data.transfer)) / distill["batch_size"])
    steps = reference_steps(
        baseline,
        distill,
        seed=spec["seed"],
        num_examples=len(data.train),
        epoch_length=distill_steps * distill["batch_size"],
        batch_loss=hard_label_loss(data),
    )
    assert steps == STEPS["kd-transfer-set"]
    assert_same_weights(load_file(str(work / "baseline.safetensors")), baseline)
