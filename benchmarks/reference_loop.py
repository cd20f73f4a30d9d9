"""A plain PyTorch distillation loop written from a job spec's meaning alone: what a user would
write in about a page to check the service (benchmarks/parity.py runs both).

It shares with the service only what the spec names and nothing of how it trains: the raw
dataset (worker.data.registry loads the rows the spec names), the model zoo's architectures
(built from the same seed, so both start from the same weights), and the meaning of the spec's
words (DESIGN section 4 and 5):

- `val_fraction` of the dataset's training rows, drawn by the job's seed, are validation rows;
  the rest train. The test split is the dataset's own. The transfer set is every row of the
  transfer dataset, minus any that are also validation or test rows; it has no labels.
- Inputs are normalised by the training rows' mean and (unbiased) standard deviation: one
  scalar, or one per channel for images.
- The teacher trains on the labelled training rows for its epochs; distillation trains the
  student on the training rows and then the transfer rows, each epoch one shuffled pass, with
  kd_weight * T^2 * KL(teacher || student) at temperature T (summed over classes, averaged over
  the batch) + ce_weight * the cross-entropy of the labelled rows; the baseline trains the same
  student from the same initial weights on the labelled rows alone, for as many optimiser
  steps as distillation took. The teacher's logits are float32.
- Every model is the one of its final epoch, scored on the test split.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from distillery.types import catalog
from worker.data.registry import load_dataset
from worker.models import MODELS, build_model


@dataclass
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_transfer: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]


def raw_arrays(part: dict[str, Any], files: dict[str, str]) -> dict[str, Any]:
    """A dataset spec's arrays (x, y, x_test, y_test, num_classes): an uploaded file's, read
    from the local .npz the user uploads (`file:NAME`, files[NAME] its path), or a builtin's."""
    name = part["name"]
    if name.startswith("file:"):
        with np.load(files[name.removeprefix("file:")], allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        if "y" in arrays:
            arrays["num_classes"] = int(max(arrays["y"].max(), arrays["y_test"].max())) + 1
        return arrays
    raw = load_dataset(name, part.get("options", {}), None, "dataset.name")
    return {
        "x": raw.x,
        "y": raw.y,
        "x_test": raw.x_test,
        "y_test": raw.y_test,
        "num_classes": raw.num_classes,
    }


def load_split(spec: dict[str, Any], files: dict[str, str]) -> Split:
    """The spec's dataset split as its words say, by the job's seed."""
    dataset, seed = spec["dataset"], spec["seed"]
    raw = raw_arrays(dataset, files)
    x = torch.as_tensor(np.asarray(raw["x"]), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(raw["y"]), dtype=torch.int64)
    x_test = torch.as_tensor(np.asarray(raw["x_test"]), dtype=torch.float32)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(len(x) * dataset.get("val_fraction", 0.1)))
    val, train = order[:n_val], order[n_val:]
    transfer = torch.empty((0, *x.shape[1:]))
    if dataset.get("transfer"):
        raw_t = raw_arrays(dataset["transfer"], files)
        parts = [np.asarray(raw_t[k]) for k in ("x", "x_test") if raw_t.get(k) is not None]
        transfer = torch.as_tensor(np.concatenate(parts), dtype=torch.float32)
        held = {row.numpy().tobytes() for row in torch.cat([x_test, x[val]])}
        keep = [i for i, row in enumerate(transfer) if row.numpy().tobytes() not in held]
        transfer = transfer[keep]
    return Split(
        x[train],
        y[train],
        transfer,
        x_test,
        torch.as_tensor(np.asarray(raw["y_test"]), dtype=torch.int64),
        int(raw["num_classes"]),
        tuple(x.shape[1:]),
    )


def normalise(split: Split) -> Split:
    """The split with every input normalised by the training rows' statistics."""
    x = split.x_train.double()
    if x.dim() == 4:  # images: per channel
        mean = x.mean(dim=(0, 2, 3), keepdim=True)[0]
        std = x.transpose(0, 1).reshape(x.shape[1], -1).std(dim=1).view(-1, 1, 1)
    else:
        mean, std = x.mean(), x.std()
    mean, std = mean.float(), std.float().clamp_min(1e-6)

    def norm(t: torch.Tensor) -> torch.Tensor:
        return (t - mean) / std

    return Split(
        norm(split.x_train),
        split.y_train,
        norm(split.x_transfer),
        norm(split.x_test),
        split.y_test,
        split.num_classes,
        split.input_shape,
    )


def model(part: dict[str, Any], split: Split, seed: int, tokens: bool = False) -> nn.Module:
    """The zoo's architecture, seeded; taking token ids (a language model) or numbers."""
    torch.manual_seed(seed)
    arch, params = part["arch"], part.get("params", {})
    if tokens:
        typed = catalog.MODELS[arch].params.model_validate(params)
        return MODELS.get(arch)(typed, split.input_shape, split.num_classes)
    return build_model(arch, params, split.input_shape, split.num_classes)


def optimiser(m: nn.Module, train: dict[str, Any]) -> torch.optim.Optimizer:
    lr, wd = train.get("lr", 0.003), train.get("weight_decay", 0.0)
    name = train.get("optimizer", "adam")
    if name == "adam":
        return torch.optim.Adam(m.parameters(), lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=wd)
    return torch.optim.SGD(m.parameters(), lr=lr, weight_decay=wd, momentum=0.9, nesterov=True)


def batches(n: int, batch_size: int, steps: int, generator: torch.Generator) -> list[torch.Tensor]:
    """`steps` batches of indices into n rows, from successive shuffles."""
    out: list[torch.Tensor] = []
    while len(out) < steps:
        perm = torch.randperm(n, generator=generator)
        out += list(perm.split(batch_size))
    return out[:steps]


def fit(
    m: nn.Module,
    train: dict[str, Any],
    n: int,
    loss_of: Any,
    seed: int,
    steps_per_epoch: int | None = None,
) -> None:
    """Train m for train["epochs"] epochs of shuffled batches over n rows."""
    epochs, batch_size = train.get("epochs", 30), train.get("batch_size", 128)
    per_epoch = steps_per_epoch or math.ceil(n / batch_size)
    total = epochs * per_epoch
    opt = optimiser(m, train)
    cosine = train.get("lr_schedule", "constant") == "cosine"
    base_lr = opt.param_groups[0]["lr"]
    generator = torch.Generator().manual_seed(seed)
    m.train()
    step = 0
    for _ in range(epochs):
        for index in batches(n, batch_size, per_epoch, generator):
            if cosine:
                for group in opt.param_groups:
                    group["lr"] = base_lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = loss_of(m, index)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1


@torch.no_grad()
def logits(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    m.eval()
    return torch.cat([m(chunk) for chunk in x.split(1024)])


def accuracy(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits(m, x).argmax(dim=1) == y).float().mean())


def run(spec: dict[str, Any], files: dict[str, str]) -> dict[str, float]:
    """Teacher, distilled student and baseline test scores of the spec; `files`: the local
    path of each uploaded file the spec names (file:NAME)."""
    task = spec.get("task", "classification")
    if task == "classification":
        return run_classification(spec, files)
    if task == "language_model":
        return run_language_model(spec, files)
    raise ValueError(f"no reference loop for task {spec['task']!r}")


def run_classification(spec: dict[str, Any], files: dict[str, str]) -> dict[str, float]:
    """Teacher, distilled student and baseline test accuracy, as the spec's words mean them."""
    seed = spec["seed"]
    split = normalise(load_split(spec, files))
    teacher_train = spec["teacher"]["train"]
    teacher = model(spec["teacher"], split, seed)

    def hard(m: nn.Module, index: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(m(split.x_train[index]), split.y_train[index])

    fit(teacher, teacher_train, len(split.x_train), hard, seed + 1)

    distill = spec["distill"]
    x_distill = torch.cat([split.x_train, split.x_transfer])
    labelled = len(split.x_train)
    soft = logits(teacher, x_distill)
    t, kd_w, ce_w = distill["temperature"], distill["kd_weight"], distill["ce_weight"]

    def kd(m: nn.Module, index: torch.Tensor) -> torch.Tensor:
        s = m(x_distill[index])
        loss = kd_w * kd_term(s, soft[index], t)
        has_label = index < labelled
        if ce_w and has_label.any():
            loss = loss + ce_w * F.cross_entropy(s[has_label], split.y_train[index[has_label]])
        return loss

    student = model(spec["student"], split, seed)
    baseline = model(spec["student"], split, seed)
    fit(student, distill, len(x_distill), kd, seed + 2)
    steps = math.ceil(len(x_distill) / distill.get("batch_size", 128))
    fit(baseline, distill, labelled, hard, seed + 3, steps_per_epoch=steps)
    return {
        "teacher": accuracy(teacher, split.x_test, split.y_test),
        "student": accuracy(student, split.x_test, split.y_test),
        "baseline": accuracy(baseline, split.x_test, split.y_test),
    }


def kd_term(s: torch.Tensor, t_logits: torch.Tensor, t: float) -> torch.Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), summed over classes, averaged over rows."""
    log_p_s = F.log_softmax(s / t, dim=-1)
    log_p_t = F.log_softmax(t_logits / t, dim=-1)
    return t * t * (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1).mean()


def bits_per_byte(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean cross-entropy of every next byte, in bits."""
    m.eval()
    total = 0.0
    with torch.no_grad():
        for xs, ys in zip(x.split(64), y.split(64), strict=True):
            total += float(F.cross_entropy(m(xs).flatten(0, 1), ys.flatten(), reduction="sum"))
    return total / y.numel() / math.log(2)


def run_language_model(spec: dict[str, Any], files: dict[str, str]) -> dict[str, float]:
    """Teacher, distilled student and baseline test bits per byte: next-byte prediction on
    byte windows, every loss per position (KD per position at T)."""
    seed = spec["seed"]
    split = load_split(spec, files)
    x, y = split.x_train.long(), split.y_train
    x_test = split.x_test.long()
    teacher = model(spec["teacher"], split, seed, tokens=True)

    def hard(m: nn.Module, index: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(m(x[index]).flatten(0, 1), y[index].flatten())

    fit(teacher, spec["teacher"]["train"], len(x), hard, seed + 1)
    distill = spec["distill"]
    teacher.eval()
    with torch.no_grad():
        soft = torch.cat([teacher(chunk) for chunk in x.split(64)])
    t, kd_w, ce_w = distill["temperature"], distill["kd_weight"], distill["ce_weight"]

    def kd(m: nn.Module, index: torch.Tensor) -> torch.Tensor:
        s = m(x[index]).flatten(0, 1)
        loss = kd_w * kd_term(s, soft[index].flatten(0, 1), t)
        if ce_w:
            loss = loss + ce_w * F.cross_entropy(s, y[index].flatten())
        return loss

    student = model(spec["student"], split, seed, tokens=True)
    baseline = model(spec["student"], split, seed, tokens=True)
    fit(student, distill, len(x), kd, seed + 2)
    fit(baseline, distill, len(x), hard, seed + 3)
    return {
        name: bits_per_byte(m, x_test, split.y_test)
        for name, m in (("teacher", teacher), ("student", student), ("baseline", baseline))
    }
