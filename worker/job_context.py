"""Everything a job's stages share: its spec, where it works, how it reports, what the stages
before have built (data, teacher, student, soft labels, baseline, report), and the services
the stages use (training with hard labels, saving a stage's output, resuming a finished one).

It is also what a teacher source is lent for its pretraining (worker.teachers.StageRunner).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from app.models import DEFAULT_TENANT
from app.settings import Settings
from app.store.base import Store
from worker import export, worksync
from worker.augment import Augmentation, ViewKey, Views
from worker.batch import Batch
from worker.control import JobControl
from worker.data import PreparedData
from worker.data.prepare import Examples
from worker.kd import auto
from worker.kd.schedules import TemperatureSchedule
from worker.learning_tasks import Task
from worker.precision import Precision
from worker.progress import Progress
from worker.softlabels import StoredLogits
from worker.teachers import TeacherSource
from worker.train import BatchLoss, LoopHooks, Validate, train


@dataclass
class JobContext:
    job_id: str
    spec: dict[str, Any]  # the resolved spec (app.jobs.spec.resolve_spec)
    settings: Settings
    control: JobControl
    store: Store
    task: Task
    device: torch.device
    workdir: Path
    tenant: str = DEFAULT_TENANT
    progress: Progress = field(default_factory=Progress)
    stage: str = "validate"
    # Built by the stages, in order.
    built: dict[str, Any] = field(default_factory=dict)
    stored_logits: StoredLogits | None = None
    baseline: nn.Module | None = None
    report: dict[str, Any] = field(default_factory=dict)

    # --- the spec ------------------------------------------------------------------------------

    @property
    def seed(self) -> int:
        return int(self.spec["seed"])

    @property
    def distill_settings(self) -> dict[str, Any]:
        """The spec's `distill`, with "auto" values replaced by what the tune stage chose (or
        is trying), or by the defaults before it ran."""
        return auto.resolved(self.spec["distill"], self.built.get("tuned"))

    # --- what validate builds -----------------------------------------------------------------

    @property
    def data(self) -> PreparedData:
        return self._built("data")

    @property
    def teacher(self) -> TeacherSource:
        return self._built("teacher")

    @property
    def student(self) -> nn.Module:
        return self._built("student")

    @property
    def precision(self) -> Precision:
        """How training steps use the device (validate plans it from the data's shape)."""
        return self.built.get("precision") or Precision(self.device)

    @property
    def augmentation(self) -> Augmentation | None:
        """The spec's `dataset.augment`, built for the data (None: no augmentation)."""
        return self.built.get("augmentation")

    def views(self, x: Examples, batch: Batch) -> Views:
        """The batch's inputs as a training stage feeds them: augmented when the spec asks,
        the same views every time the same batch comes round (a replay, a resume). A mixing
        augmentation blends each view with its partner's own view (the next position)."""
        inputs = x.batch(batch.index, self.device)
        augmentation = self.augmentation
        if augmentation is None:
            return Views(self.precision.inputs(inputs))
        views = augmentation(inputs, ViewKey(self.seed, batch.epoch, batch.positions))
        if not augmentation.mixes():
            return Views(self.precision.inputs(views))
        partner_positions, partners = batch.partners()
        partner_views = augmentation(
            x.batch(partners, self.device), ViewKey(self.seed, batch.epoch, partner_positions)
        )
        mixed, lam = augmentation.mix(
            views, partner_views, ViewKey(self.seed, batch.epoch, batch.positions)
        )
        return Views(self.precision.inputs(mixed), lam, partners)

    def distill_set(self) -> tuple[Examples, torch.Tensor]:
        """The examples distillation trains on and their labels: the data's (train, then
        transfer), or the teacher's text where a method asked for it (teacher_text)."""
        if "distill_set" in self.built:
            return self.built["distill_set"]
        return self.data.distill, self.data.y_distill

    def _built(self, name: str) -> Any:
        assert name in self.built, f"{name} is built by the validate stage, which runs first"
        return self.built[name]

    def build_student(self) -> nn.Module:
        """The student arch, seeded: the baseline starts from exactly the student's weights."""
        part = self.spec["student"]
        torch.manual_seed(self.seed)
        return self.task.build_model(part["arch"], part["params"], self.data).to(self.device)

    # --- reporting ----------------------------------------------------------------------------

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.control.event(kind, message, data)

    def enter(self, stage: str) -> None:
        self.stage = stage
        self.progress.enter(stage)
        self.control.stage(stage, self.progress.snapshot())

    def hooks(self) -> LoopHooks:
        """What the training loop reports to: epochs, resumes, checkpoints, cancel checks."""

        def on_epoch(epoch: int, values: dict[str, float]) -> None:
            self.progress.epoch_done(epoch)
            values = self.task.epoch_values(values, self.data)
            self.control.epoch(self.stage, epoch, values, self.progress.snapshot())

        def on_start(epochs_done: int) -> None:
            if epochs_done:
                self.progress.resumed_after(epochs_done)
                self.event("info", f"{self.stage}: resuming after epoch {epochs_done}")

        return LoopHooks(
            check=self.control.check,
            on_epoch=on_epoch,
            check_every=self.settings.cancel_check_steps,
            on_start=on_start,
            on_checkpoint=self.push,
        )

    # --- stage outputs ------------------------------------------------------------------------

    def push(self, path: Path) -> None:
        """Copy a work file to a remote store (no-op for a local one)."""
        worksync.push(self.store, self.job_id, path)

    def save_output(self, model: nn.Module, name: str) -> Path:
        """Write a stage's weights (whole or not at all) and copy them to a remote store."""
        path = self.workdir / f"{name}.safetensors"
        export.save_safetensors(model, path)
        self.push(path)
        return path

    def finished(self, model: nn.Module, name: str) -> bool:
        """Load a stage's output if an earlier attempt finished it."""
        path = self.workdir / f"{name}.safetensors"
        if not path.exists():
            return False
        model.load_state_dict(load_file(str(path), device=str(self.device)))
        self.event("info", f"{self.stage}: reusing {name} weights from an earlier attempt")
        self.progress.restart_eta()
        return True

    # --- training -----------------------------------------------------------------------------

    def validator(self) -> Validate:
        data, task = self.data, self.task

        def validate(model: nn.Module) -> dict[str, float]:
            return {f"val_{k}": v for k, v in task.measure(model, data.val, data.y_val).items()}

        return validate

    def train_with_labels(
        self, model: nn.Module, settings: dict[str, Any], name: str, steps: int | None = None
    ) -> None:
        """Train `model` on the labelled train split (the teacher's pretraining, the baseline);
        `steps` per epoch when given (the baseline matches distillation's)."""
        x = self.data.train
        batch_loss = self.hard_label_loss(x, self.data.y_train)
        self.train_stage(model, settings, x, batch_loss, name, steps_per_epoch=steps)

    def hard_label_loss(self, x: Examples, labels: torch.Tensor) -> BatchLoss:
        """A batch's loss on hard labels, on the views training feeds (augmented, mixed: then
        each view's share of its two examples' labels), as the task defines it."""
        y, task = labels.to(self.device), self.task

        def batch_loss(m: nn.Module, batch: Batch) -> torch.Tensor:
            views = self.views(x, batch)
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
        `<name>.ckpt`, reporting to the job, with the job's seed and precision."""
        self.progress.start_epochs(settings["epochs"])
        try:
            train(
                model,
                settings=settings,
                num_examples=len(x),
                batch_loss=batch_loss,
                validate=self.validator(),
                checkpoint_path=self.workdir / f"{name}.ckpt",
                hooks=self.hooks(),
                seed=self.seed,
                steps_per_epoch=steps_per_epoch,
                temperature=temperature,
                precision=self.precision,
            )
        finally:
            x.release()
