"""The one training loop every stage uses: teacher pretraining, distillation and baseline.

Plain and readable on purpose (nanoGPT-style): a stage supplies how to compute a batch's loss
from example indices and how to validate; the loop owns sampling, the optimiser, the LR and
temperature schedules, per-epoch checkpoints (resume after a crash), cancel checks and metrics.
"""

import functools
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from worker import data_parallel
from worker.batch import Batch
from worker.control import Interrupted
from worker.data.prepare import Examples
from worker.kd.schedules import TemperatureSchedule
from worker.precision import Precision

BatchLoss = Callable[[nn.Module, Batch], torch.Tensor]
Validate = Callable[[nn.Module], dict[str, float]]


class TrainingDiverged(RuntimeError):
    """The loss went to NaN or infinity: more epochs would only waste the GPU."""


@dataclass
class LoopHooks:
    """What the pipeline plugs in: `check` raises to stop the loop (cancel, lost lease) and
    is called every `check_every` steps; `on_epoch(epoch, values)` records an epoch (1-based);
    `on_start(epochs_done)` is told where training starts (> 0 after a resume);
    `on_checkpoint(path)` follows every checkpoint written."""

    check: Callable[[], None]
    on_epoch: Callable[[int, dict[str, float]], None]
    check_every: int = 20
    on_start: Callable[[int], None] = lambda _epochs_done: None
    # Told the path of each checkpoint just written (the pipeline copies it to a remote store).
    on_checkpoint: Callable[[Path], None] = lambda _path: None


def make_optimizer(model: nn.Module, settings: dict[str, Any]) -> torch.optim.Optimizer:
    # `settings` is a resolved spec part (distillery.types.fields.TrainSettings): every field is
    # there.
    params, lr, wd = model.parameters(), settings["lr"], settings["weight_decay"]
    name = settings["optimizer"]
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=0.9, nesterov=True)
    raise KeyError(f"unknown optimizer {name!r}")


def optimiser_step(
    loss_of_batch: Callable[[], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scaler: "torch.amp.GradScaler",
    precision: Precision,
) -> torch.Tensor:
    """One optimiser step on a batch's loss, as every training stage and the estimates take it:
    the forward under the precision's autocast, the scaled backward, the step; the loss."""
    with precision.forward():
        loss = loss_of_batch()
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


def epoch_order(num_examples: int, length: int, seed: int, epoch: int) -> torch.Tensor:
    """The example order of one epoch: fresh permutations of the data, `length` indices long.
    Seeded by (seed, epoch) so a resumed run draws exactly the batches it would have."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    repeats = math.ceil(length / num_examples)
    perms = [torch.randperm(num_examples, generator=generator) for _ in range(repeats)]
    return torch.cat(perms)[:length]


def train(
    model: nn.Module,
    *,
    settings: dict[str, Any],
    num_examples: int,
    batch_loss: BatchLoss,
    validate: Validate,
    checkpoint_path: Path,
    hooks: LoopHooks,
    seed: int,
    steps_per_epoch: int | None = None,
    temperature: TemperatureSchedule | None = None,
    precision: Precision | None = None,
) -> None:
    """Train `model` in place for settings["epochs"] epochs, resuming from `checkpoint_path`.

    An epoch is one pass over the examples, or `steps_per_epoch` batches drawn from fresh
    permutations when given (the baseline uses this to match the distilled student's steps).
    `precision` says how a step uses the device (mixed precision, memory format, compile);
    float32 as is by default.
    """
    epochs, batch_size = settings["epochs"], settings["batch_size"]
    steps = steps_per_epoch or math.ceil(num_examples / batch_size)
    length = num_examples if steps_per_epoch is None else steps * batch_size
    optimizer = make_optimizer(model, settings)
    total_steps = epochs * steps
    cosine = settings["lr_schedule"] == "cosine"

    def lr_factor(step: int) -> float:
        if not cosine:
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    device = next(model.parameters()).device
    precision = precision or Precision(device)
    step_model = precision.prepare(model)
    scaler = precision.scaler()
    # In a torchrun rank (worker/data_parallel.py): a part of each batch, gradients averaged,
    # decisions agreed; rank 0 alone validates and writes.
    parallel = data_parallel.active()
    writes = data_parallel.writes()
    check = hooks.check
    if parallel:
        step_model = data_parallel.wrap(step_model, device)
        check = data_parallel.agreed(hooks.check)

    def checkpoint(epoch: int, step: int = 0, partial: dict[str, float] | None = None) -> None:
        """Save where the loop is: the start of `epoch`, or `step` batches into it (with the
        epoch's running loss, examples seen and seconds spent, in `partial`)."""
        if not writes:
            return
        _save_checkpoint(
            checkpoint_path,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "temperature": temperature.state_dict() if temperature is not None else {},
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "epoch": epoch,
                "step": step,
                "partial": partial or {},
            },
        )
        hooks.on_checkpoint(checkpoint_path)

    start_epoch, start_step, partial = 0, 0, {}
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if temperature is not None:
            temperature.load_state_dict(state["temperature"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        start_epoch = state["epoch"]
        start_step, partial = state.get("step", 0), state.get("partial", {})
    hooks.on_start(start_epoch)

    for epoch in range(start_epoch, epochs):
        model.train()
        t = temperature.temperature(epoch) if temperature is not None else None
        # Indices stay on the CPU: the soft-label store reads them without a device sync, and
        # indexing a GPU tensor with them is a small asynchronous copy.
        order = epoch_order(num_examples, length, seed, epoch)
        first = start_step if epoch == start_epoch else 0
        # The totals a pause left (every rank's): counted once, by rank 0.
        carried = partial if first and writes else {}
        loss_sum = torch.full((), carried.get("loss_sum", 0.0), device=device)
        seen = int(carried.get("seen", 0))
        started = time.perf_counter() - carried.get("seconds", 0.0)
        for step in range(first, steps):
            start = step * batch_size
            index = order[start : start + batch_size]
            positions = torch.arange(start, start + len(index))
            examples, weight = len(index), 1.0
            if parallel:
                index, positions, weight, examples = data_parallel.part(index, positions)
            batch = Batch(index, epoch, positions, t, order)
            step_loss = functools.partial(batch_loss, step_model, batch)
            if parallel:
                step_loss = functools.partial(_weighted, step_loss, weight)
            loss = optimiser_step(step_loss, optimizer, scaler, precision)
            scheduler.step()
            if examples:
                loss_sum += loss.detach() / weight * examples
            seen += examples
            if (step + 1) % hooks.check_every == 0:
                try:
                    check()
                except Interrupted:
                    spent = time.perf_counter() - started
                    total, examples_seen = _totals(parallel, loss_sum, seen)
                    at = {"loss_sum": total, "seen": examples_seen, "seconds": spent}
                    checkpoint(epoch, step + 1, at)
                    raise
        seconds = time.perf_counter() - started
        total, seen = _totals(parallel, loss_sum, seen)
        train_loss = total / max(seen, 1)
        if not math.isfinite(train_loss):
            raise TrainingDiverged(
                f"the training loss became {train_loss} in epoch {epoch + 1}; "
                "a lower lr (or temperature) usually fixes this"
            )
        measured = validate(model) if writes else {}
        if parallel:
            measured = data_parallel.from_writer(measured)
        values = {
            "train_loss": train_loss,
            **measured,
            # The lr in effect at the epoch's first step (its start): read after the loop, the
            # optimiser already holds the lr of the next epoch's first step.
            "lr": scheduler.base_lrs[0] * lr_factor(epoch * steps),
            "samples_per_second": seen / max(seconds, 1e-9),
            "epoch_seconds": seconds,
        }
        if t is not None:
            values["temperature"] = t
            temperature.observe(values)  # type: ignore[union-attr]
        # Record first, checkpoint second: a crash in between redoes (and re-records) the
        # epoch instead of leaving it out of the metrics.
        if writes:
            hooks.on_epoch(epoch + 1, values)
        checkpoint(epoch + 1)
        check()
    precision.release(model)


def _totals(parallel: bool, loss_sum: torch.Tensor, seen: int) -> tuple[float, int]:
    """The epoch's loss sum and examples so far, over every rank."""
    if not parallel:
        return loss_sum.item(), seen
    total, examples = data_parallel.all_sum(loss_sum.item(), seen)
    return total, int(examples)


def _weighted(loss: Callable[[], torch.Tensor], weight: float) -> torch.Tensor:
    return loss() * weight


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def _chunks(x: torch.Tensor | Examples, batch_size: int) -> Iterator[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return (x[i : i + batch_size] for i in range(0, len(x), batch_size))
    return x.chunks(batch_size)


def predict_chunks(
    model: nn.Module, x: torch.Tensor | Examples, batch_size: int = 1024
) -> Iterator[torch.Tensor]:
    """Logits for `x` in eval mode (dropout off, BatchNorm statistics frozen), on the CPU,
    one batch at a time: a dataset on disk is never held whole."""
    model.eval()
    device = next(model.parameters()).device
    for chunk in _chunks(x, batch_size):
        with torch.no_grad():
            yield model(chunk.to(device)).float().cpu()


def predict(model: nn.Module, x: torch.Tensor | Examples, batch_size: int = 1024) -> torch.Tensor:
    """Logits for all of `x`, on the CPU."""
    out = list(predict_chunks(model, x, batch_size))
    return torch.cat(out) if out else torch.empty((0,))
