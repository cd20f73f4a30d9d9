"""What a job's stages share: its spec, where it works, how it reports, what the stages before
have built (data, teacher, student, soft labels, baseline, report) and the views a training
step is fed; and its two parts, each with one job: `outputs` (worker/stage_outputs.py: the
stages' work files) and `trainer` (worker/trainer.py: the training loop run for the job).

It is also what a teacher source is lent for its pretraining (worker.teachers.StageRunner).
"""

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.models import DEFAULT_TENANT, Job
from app.settings import Settings
from app.store import make_store
from app.store.base import Store
from worker.augment import Augmentation, ViewKey, Views
from worker.batch import Batch
from worker.control import JobControl
from worker.data import PreparedData
from worker.data.prepare import Examples
from worker.kd import auto
from worker.learning_tasks import Task, task_for
from worker.precision import Precision
from worker.progress import Progress
from worker.softlabels import StoredLogits
from worker.stage_outputs import StageOutputs
from worker.students import StudentContext, StudentSource, build_student_source
from worker.teachers import TeacherSource
from worker.trainer import Trainer


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
    random_init: nn.Module | None = None
    report: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_job(
        cls,
        row: Job,
        settings: Settings,
        control: JobControl,
        *,
        store: Store | None = None,
        device: torch.device | None = None,
        workdir: Path | None = None,
    ) -> "JobContext":
        """The context a process builds for the job `row` (the worker that claimed it, a
        worker helping with its shards, a torchrun rank): the job's spec and tenant (the only
        one whose uploaded files it may read), the configured store, the task the spec names,
        this machine's device (CUDA when it has one) and the job's work folder, unless given."""
        return cls(
            job_id=row.id,
            spec=row.spec,
            tenant=row.tenant,
            settings=settings,
            control=control,
            store=store or make_store(settings.artifact_url, settings.s3_endpoint_url),
            task=task_for(row.spec),
            device=device or torch.device("cuda" if torch.cuda.is_available() else "cpu"),
            workdir=workdir or settings.work_root / "jobs" / row.id,
        )

    # --- the spec ------------------------------------------------------------------------------

    @property
    def student_models(self) -> tuple[str, ...]:
        """The models of the student's architecture the job trains and reports: the student,
        the baseline unless the spec turns it off, and the random-init one when the student
        source asks for it."""
        spec = self.spec
        return (
            ("student",)
            + (("baseline",) if spec["baseline"] else ())
            + (("random_init",) if spec["student"].get("random_init_baseline") else ())
        )

    @property
    def seed(self) -> int:
        return int(self.spec["seed"])

    @property
    def arithmetic(self) -> str:
        """The spec's `precision` (jobs stored before it existed: float32)."""
        return str(self.spec.get("precision", "float32"))

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

    @cached_property
    def student_source(self) -> StudentSource:
        """Where the student comes from (`student.source`), once the teacher is built."""
        return build_student_source(
            StudentContext(self.spec["student"], self.data, self.task, self.teacher, self.seed)
        )

    def build_student(self) -> nn.Module:
        """The student's initial weights, seeded: the baseline starts from exactly them."""
        torch.manual_seed(self.seed)
        return self.student_source.build().to(self.device)

    def build_random_init(self) -> nn.Module | None:
        """The student's architecture from random init, seeded, where the source offers it."""
        torch.manual_seed(self.seed)
        model = self.student_source.random_init()
        return None if model is None else model.to(self.device)

    # --- reporting ----------------------------------------------------------------------------

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.control.event(kind, message, data)

    def enter(self, stage: str) -> None:
        self.stage = stage
        self.progress.enter(stage)
        self.control.stage(stage, self.progress.snapshot())

    # --- its parts -----------------------------------------------------------------------------

    @cached_property
    def outputs(self) -> StageOutputs:
        """The stages' work files: weights saved whole, reused by a later attempt."""
        return StageOutputs(self)

    @cached_property
    def trainer(self) -> Trainer:
        """The training loop as the stages run it, reporting to this job."""
        return Trainer(self)
