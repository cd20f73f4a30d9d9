"""The training loop as a job's stages run it (worker/train.py is the loop itself): over the
job's views, validated by the job's task, checkpointed in its work folder, reporting epochs,
resumes and checkpoints to the job, with its seed and precision; and the hard-label loss the
teacher's pretraining, the baseline and the estimates share."""

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from worker import torchrun
from worker.batch import Batch
from worker.data.prepare import Examples
from worker.kd.schedules import TemperatureSchedule
from worker.train import BatchLoss, LoopHooks, Validate, train

if TYPE_CHECKING:
    from worker.job_context import JobContext


class Trainer:
    def __init__(self, job: "JobContext") -> None:
        self.job = job

    def hooks(self) -> LoopHooks:
        """What the training loop reports to: epochs, resumes, checkpoints, cancel checks."""

        def on_epoch(epoch: int, values: dict[str, float]) -> None:
            self.job.progress.epoch_done(epoch)
            values = self.job.task.epoch_values(values, self.job.data)
            self.job.control.epoch(self.job.stage, epoch, values, self.job.progress.snapshot())

        def on_start(epochs_done: int) -> None:
            if epochs_done:
                self.job.progress.resumed_after(epochs_done)
                self.job.event("info", f"{self.job.stage}: resuming after epoch {epochs_done}")

        return LoopHooks(
            check=self.job.control.check,
            on_epoch=on_epoch,
            check_every=self.job.settings.cancel_check_steps,
            on_start=on_start,
            on_checkpoint=self.job.outputs.push,
        )

    def validator(self) -> Validate:
        data, task = self.job.data, self.job.task

        def validate(model: nn.Module) -> dict[str, float]:
            return {f"val_{k}": v for k, v in task.measure(model, data.val, data.y_val).items()}

        return validate

    def train_with_labels(
        self, model: nn.Module, settings: dict[str, Any], name: str, steps: int | None = None
    ) -> None:
        """Train `model` on the labelled train split (the teacher's pretraining, the baseline);
        `steps` per epoch when given (the baseline matches distillation's)."""
        x = self.job.data.train
        batch_loss = self.hard_label_loss(x, self.job.data.y_train)
        self.train_stage(model, settings, x, batch_loss, name, steps_per_epoch=steps)

    def hard_label_loss(self, x: Examples, labels: torch.Tensor) -> BatchLoss:
        """A batch's loss on hard labels, on the views training feeds (augmented, mixed: then
        each view's share of its two examples' labels), as the task defines it."""
        y, task = labels.to(self.job.device), self.job.task

        def batch_loss(m: nn.Module, batch: Batch) -> torch.Tensor:
            views = self.job.views(x, batch)
            mix = None
            if views.lam is not None and views.partners is not None:
                mix = (y[views.partners], views.lam)
            return task.hard_label_loss(m(views.inputs), y[batch.index], mix)

        return batch_loss

    def train_stage(
        self,
        model: nn.Module,
        settings: dict[str, Any],
        x: Examples,
        batch_loss: BatchLoss,
        name: str,
        *,
        steps_per_epoch: int | None = None,
        temperature: TemperatureSchedule | None = None,
    ) -> None:
        """Run the training loop for the current stage over `x`, checkpointing to
        `<name>.ckpt`, reporting to the job, with the job's seed and precision; in
        `resources.processes` torchrun ranks when the job asks for more than one
        (worker/torchrun.py), after which the model is loaded from their last checkpoint."""
        self.job.progress.start_epochs(settings["epochs"])
        hooks = self.hooks()
        if not torchrun.in_rank() and torchrun.processes(self.job) > 1:
            torchrun.run_ranks(self.job)
            hooks = replace(hooks, on_start=lambda _epochs_done: None)
        try:
            train(
                model,
                settings=settings,
                num_examples=len(x),
                batch_loss=batch_loss,
                validate=self.validator(),
                checkpoint_path=self.job.workdir / f"{name}.ckpt",
                hooks=hooks,
                seed=self.job.seed,
                steps_per_epoch=steps_per_epoch,
                temperature=temperature,
                precision=self.job.precision,
            )
        finally:
            x.release()
        if torchrun.in_rank():
            raise torchrun.RankDone
